"""The experiment store: one SQLite file holding every trial and the strategy's saved states.

It is the single source of truth. A trial is written (RUNNING, with the strategy state that
proposed it) before it is evaluated, and its result is written together with the strategy state
after it was told, in one transaction, so a crash at any point leaves a consistent file that a
resumed search can continue. WAL mode and a busy timeout let other processes read while a
search writes; readers open the file read-only, so a user who may only read it can.

What SQLite cannot promise by itself is checked here: a writer runs SQLite's ``quick_check`` when it
opens a store, strategy states carry a checksum (their large parts are stored by content hash, which
is checked too), a new store appears whole (built beside and renamed), and every SQLite error
becomes a :class:`StoreError` that names the file and what to do.

The package splits the store by job: ``schema.py`` (tables, versions, migrations), ``opening.py``
(creating and connecting), ``records.py`` (trials), ``states.py`` (strategy states and their
blobs), ``errors.py`` (SQLite errors as messages) and ``store.py`` (the :class:`Store` that joins
them). Reading trials imports no torch; only a strategy state does.
"""

from pathlib import Path

from .errors import EmptyStoreError, StoreError
from .records import STATES, TrialRecord
from .schema import MIGRATIONS, SCHEMA_VERSION
from .states import dump_state, load_state
from .store import Store

__all__ = ["EmptyStoreError", "MIGRATIONS", "SCHEMA_VERSION", "STATES", "STORE_FILE", "Store", "StoreError",
           "TrialRecord", "dump_state", "load_state", "store_path"]

STORE_FILE = "trials.sqlite"


def store_path(experiment: "str | Path") -> Path:
    """Where an experiment folder keeps its store (here, so that readers need not import the search)."""
    return Path(experiment) / STORE_FILE
