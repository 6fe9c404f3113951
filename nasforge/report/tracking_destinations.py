"""Where ``nasforge track`` and ``nasforge search --log-to`` log, and whether they can: the
destination is checked before anything is logged or searched, and refused in one line (a
ValueError) that says what to give instead. Nothing is written by the check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..writable import why_unwritable


def destination(target: str, experiment: Path, where: Optional[str] = None) -> str:
    """Where ``target`` logs: ``where`` (``--to`` / ``--log-uri``), else MLflow's $MLFLOW_TRACKING_URI,
    else a file in the experiment folder (``sqlite:///<experiment>/mlflow.db``, ``<experiment>/tensorboard``)."""
    if target == "mlflow":
        default = f"sqlite:///{(Path(experiment) / 'mlflow.db').resolve()}"
        return where or os.environ.get("MLFLOW_TRACKING_URI") or default
    return str(Path(where) if where else Path(experiment) / "tensorboard")


def check_destination(target: str, experiment: Path, where: Optional[str], flag: str) -> str:
    """The destination ``target`` would log to, checked before anything is logged (or searched): a
    ValueError saying what to give instead when it cannot be used. Writes nothing. ``flag`` names
    the option it came from (``--to``, ``--log-uri``) for the message."""
    uri = destination(target, experiment, where)
    given = f"{flag} {uri}" if where else (f"$MLFLOW_TRACKING_URI={uri}" if target == "mlflow" and
                                           os.environ.get("MLFLOW_TRACKING_URI") else None)
    default_in_experiment = given is None  # inside the experiment folder, checked with it
    if target == "tensorboard":
        why = None if default_in_experiment else why_unwritable(Path(uri))
        if why:
            raise ValueError(f"{given}: cannot write TensorBoard's log folder there: {why}; give a folder "
                             "you may write (or leave the flag out: <experiment>/tensorboard)")
        return uri
    from urllib.parse import urlparse

    from mlflow.utils.uri import get_uri_scheme

    scheme = get_uri_scheme(uri)
    if scheme in ("", "file"):
        try:
            from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE

            allowed = MLFLOW_ALLOW_FILE_STORE.get()
        except ImportError:  # MLflow before 3.7 keeps a plain folder without being asked
            allowed = True
        if not allowed:
            import mlflow

            raise ValueError(
                f"{given}: a plain folder is MLflow's filesystem backend, which MLflow {mlflow.__version__} refuses "
                "(it wants a database); give a database URI such as sqlite:///mlflow.db, or a tracking server's "
                f"http(s)://... address, or {'leave ' + flag + ' out' if where else 'unset MLFLOW_TRACKING_URI'} "
                "for sqlite:///<experiment>/mlflow.db (to use a folder anyway, set MLFLOW_ALLOW_FILE_STORE=true)")
        path = Path(urlparse(uri).path if scheme == "file" else uri)
        why = why_unwritable(path)
    elif scheme == "sqlite":
        path = urlparse(uri).path[1:]  # sqlite:///relative.db, sqlite:////absolute.db
        why = None if default_in_experiment or path in ("", ":memory:") else (
            f"{path} is a folder, not a database file" if Path(path).is_dir() else why_unwritable(Path(path).parent))
    else:
        why = None
        try:  # MLflow's own table of schemes, read without connecting (a private name: skipped if moved)
            from mlflow.tracking._tracking_service.utils import _tracking_store_registry

            _tracking_store_registry.get_store_builder(uri)
        except (ImportError, AttributeError):
            pass
        except Exception as exc:  # noqa: BLE001 - MLflow's "unsupported URI" error
            supported = getattr(exc, "supported_uri_schemes", None)
            why = f"MLflow knows no {scheme}:// store" + (
                f" (it knows {', '.join(s for s in supported if s)})" if supported else "")
    if why:
        raise ValueError(f"{given}: MLflow cannot log there: {why}; give a database URI such as "
                         f"sqlite:///mlflow.db or a tracking server's http(s)://... address")
    return uri
