"""The settings a search stores, and reading them back: what ``--resume`` compares and what the
other commands rebuild the space, the estimator and the data from.

Stores written by older versions are completed on read (``migrate_config``) and compared with
today's defaults filled in (``with_defaults``), so resuming them works and refuses only real
differences.

A table search stores only what it reads (``used_settings``): the table is its data and its
training is a lookup, so it keeps no ``dataset`` and, of ``[training]``, only the lookup's own
settings. Older stores, which held the defaults ``mnist1d`` and 8 epochs there, read the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .config import ConfigError, SearchConfig, import_plugins
from .data.datasets import DATASETS, Dataset
from .spaces.base import SPACES, SearchSpace, create_space, is_tabular
from .store import Store


def stored_config(config: SearchConfig, space: SearchSpace, data: Optional[Dataset]) -> Dict[str, Any]:
    """Everything needed to rebuild the space, the estimator and the data without guessing: the
    settings as given, completed with what was derived while building (the space's own settings,
    such as chain-cnn's ``dims``, read off the data), and the data's fingerprint."""
    stored = config.to_dict()
    stored["space"] = {**config.space, **space.config()}
    if data is not None:
        stored["data_fingerprint"] = data.fingerprint()
    return used_settings(stored)


def used_settings(settings: Dict[str, Any]) -> Dict[str, Any]:
    """``settings`` less what the search never reads. A table search (``is_tabular``) takes no
    dataset, and of ``[training]`` only the settings its lookup declares (``lookup_settings``):
    the defaults ``mnist1d`` and 8 epochs would otherwise be stored, and shown, as if used. Any
    other search is returned as it is."""
    name = (settings.get("space") or {}).get("name")
    if not isinstance(name, str) or name not in SPACES or not is_tabular(name):
        return settings  # a trained space, or a plugin's not imported here: nothing to judge
    lookup = SPACES.get(name).lookup_settings
    used = {k: v for k, v in settings.items() if k != "dataset"}
    used["training"] = {k: v for k, v in (settings.get("training") or {}).items() if k in lookup}
    return used


def _path_and_size(name: str) -> Tuple[str, str]:
    """``DIR@SIZE`` -> (``DIR``, ``@SIZE``) for an image folder; any other name -> (name, "")."""
    folder, at, size = name.rpartition("@")
    if at and folder and Path(folder).expanduser().is_dir():
        return folder, at + size
    return name, ""


def dataset_reference(name: str) -> str:
    """A data file or image folder by its absolute path (an image size kept), so that the
    experiment can be read from any folder; a built-in dataset by its name."""
    path, size = _path_and_size(name)
    if name in DATASETS or not Path(path).expanduser().exists():
        return name
    return str(Path(path).expanduser().resolve()) + size


#: Training settings that name a file, stored by absolute path like the data.
FILE_SETTINGS = ("init_weights",)


def file_references(training: Dict[str, Any]) -> Dict[str, Any]:
    """``training`` with each setting that names a file (``init_weights``) as an absolute path, so
    that a resume from another folder reads the same file."""
    return {k: str(Path(v).expanduser().resolve()) if k in FILE_SETTINGS and isinstance(v, str) and v else v
            for k, v in training.items()}


def stored_data_missing(name: str) -> bool:
    """Whether a stored dataset names a file or folder that is no longer there (a built-in
    dataset never is)."""
    if name in DATASETS or not (name.endswith(".npz") or "/" in name):
        return False
    return not Path(_path_and_size(name)[0]).expanduser().exists()


def _chain_cnn_dims(stored: Dict[str, Any], tokens_length: Optional[int]) -> Optional[int]:
    """The ``dims`` a chain-cnn search used, read off the length of its stored tokens (the two
    spaces of one depth differ in length)."""
    if tokens_length is None:
        return None
    settings = {k: v for k, v in stored["space"].items() if k not in ("name", "dims")}
    for dims in (1, 2):
        try:
            if len(create_space("chain-cnn", **settings, dims=dims).decisions) == tokens_length:
                return dims
        except (TypeError, ValueError):
            return None
    return None


def migrate_config(stored: Dict[str, Any], tokens_length: Optional[int]) -> Dict[str, Any]:
    """A stored config completed the way today's search stores it. Stores written before the
    stored config was complete lack chain-cnn's ``dims`` (derived from the data): it is read off
    the stored tokens, or 1 (the default then) when there are none. A table search written before
    it stored only what it reads loses the unused dataset and training defaults."""
    stored = used_settings(dict(stored))
    space = dict(stored.get("space") or {})
    if space.get("name") == "chain-cnn" and "dims" not in space:
        space["dims"] = _chain_cnn_dims({**stored, "space": space}, tokens_length) or 1
        stored["space"] = space
    return stored


def same_data(stored: Dict[str, Any], wanted: Dict[str, Any]) -> List[str]:
    """``["dataset"]`` when the data is the same by its fingerprint, wherever the file now lies
    (data is identified by content, so moved data can be pointed to)."""
    fingerprint = stored.get("data_fingerprint")
    return ["dataset"] if fingerprint is not None and fingerprint == wanted.get("data_fingerprint") else []


def same_table(stored: Dict[str, Any], wanted: Dict[str, Any]) -> List[str]:
    """``["space.table"]`` when a table stored by a relative path (before tables were stored by
    absolute path) names, from here, the file the search now reads."""
    old, new = stored.get("space") or {}, wanted.get("space") or {}
    table, now = old.get("table"), new.get("table")
    if not isinstance(table, str) or not isinstance(now, str) or Path(table).is_absolute():
        return []
    return ["space.table"] if Path(table).expanduser().resolve() == Path(now).expanduser().resolve() else []


def read_config(store: Store) -> Optional[Dict[str, Any]]:
    """The complete config of the search in ``store`` (migrated in memory when the store is old).
    Its plugins are imported first: every command that reads a search reads its settings here, and
    the space, strategy or estimator they name may be a plugin's (a missing plugin is refused by name)."""
    stored = store.config()
    if stored is None:
        return None
    import_plugins(stored.get("plugins") or [])
    trials = store.trials()
    return migrate_config(stored, len(trials[0].tokens) if trials else None)


def with_defaults(stored: Dict[str, Any]) -> Dict[str, Any]:
    """A stored config with the settings added since it was written at their defaults, so that
    a store from an older nasforge compares equal to the same search today."""
    settings = {k: v for k, v in stored.items() if k != "data_fingerprint"}
    try:
        full = SearchConfig.from_dict(settings).to_dict()
    except ConfigError:
        return stored  # differences() will name what does not match
    if "data_fingerprint" in stored:
        full["data_fingerprint"] = stored["data_fingerprint"]
    return used_settings(full)
