"""Why a plugin module did not import, in one line a user can act on (a leaf: imports nothing of
nasforge, so ``config.py`` can use it at no cost)."""

from __future__ import annotations


def why_not_imported(name: str, exc: Exception) -> str:
    """The reason ``name`` did not import. A plugin that raises on import is named with its error's
    type. One that Python cannot find (the plugin itself, not a module it needs) gets how to make it
    importable: the ``nasforge`` command, unlike ``python -m nasforge``, does not look in the current
    folder, and nasforge adds no folder to ``sys.path`` on its own."""
    if not isinstance(exc, ImportError):
        return f"{type(exc).__name__}: {exc}"
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if missing and "." not in missing and (name == missing or name.startswith(missing + ".")):
        return (f"{exc}; install it, or put the folder that holds {missing!r} on PYTHONPATH "
                "(for one in the current folder: `PYTHONPATH=. nasforge ...`)")
    if missing == name:
        return f"{exc} (its package was found: is the module's name right?)"
    return str(exc)
