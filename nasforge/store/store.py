"""The :class:`Store`: one experiment's SQLite file, opened for writing (one search) or reading."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import EmptyStoreError, StoreError, explain, guarded
from .opening import Opening
from .records import Trials
from .schema import SchemaChecks, init_schema
from .states import States


class Store(Opening, SchemaChecks, Trials, States):
    """One experiment's SQLite file. ``readonly`` opens it for reading only (never written, never
    migrated, no lock taken): what ``trials``, ``best`` and a dashboard use."""

    def __init__(self, path: str | Path, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if not self.path.exists():
            if not create or readonly:
                raise StoreError(f"no experiment store at {self.path}")
            self._create()
        elif not readonly and not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
            raise StoreError(
                f"{self.path} is read-only for this user (the file or its folder): its trials can be read (nasforge "
                "trials, best), but a search cannot continue it; copy the experiment directory somewhere you may write")
        try:
            self.conn = self._connect_readonly() if readonly else self._connect()
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a nasforge store, or its header is damaged ({exc}); if it was "
                             "a store, restore it from a backup or start a new experiment") from None
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite file but not a nasforge store")
        if not tables:
            if not create or readonly:
                raise EmptyStoreError(f"{self.path} holds no experiment: its creation was cut short; start the "
                                      "search again (without --resume), which replaces it")
            init_schema(self.conn)  # an empty file from an older nasforge's cut-short creation
            return
        try:
            if not readonly:
                self._check_integrity()
            self._migrate(self.get_meta("schema_version"))
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from exc


    def _explain(self, exc: sqlite3.DatabaseError) -> StoreError:
        """What an SQLite error means for the user of this store, and what to do about it."""
        return explain(self.path, exc)

    # ---- plumbing -----------------------------------------------------------------------------
    class _Tx:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self):
            if self.conn.in_transaction:
                # A write was interrupted between its BEGIN and its with-block (Ctrl+C or SIGTERM raise
                # at any bytecode, and __exit__ does not run for a with-block never entered). Its
                # changes are incomplete: drop them, rather than fail every later write on a nested BEGIN.
                self._rollback()
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, exc, tb):
            if exc_type is None:
                try:
                    self.conn.execute("COMMIT")
                    return False
                except sqlite3.DatabaseError:
                    self._rollback()
                    raise
            self._rollback()
            return False

        def _rollback(self) -> None:
            """SQLite may have rolled back by itself (disk full, I/O error): never hide the first error."""
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.DatabaseError:
                    pass

    def _tx(self) -> "Store._Tx":
        return Store._Tx(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- experiment metadata ------------------------------------------------------------------
    @guarded
    def get_meta(self, key: str) -> Optional[str]:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @guarded
    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @guarded
    def config(self) -> Optional[Dict[str, Any]]:
        raw = self.get_meta("config")
        return json.loads(raw) if raw else None

    @guarded
    def set_config(self, config: Dict[str, Any]) -> None:
        self.set_meta("config", json.dumps(config, sort_keys=True))

    # ---- final evaluations --------------------------------------------------------------------
    @guarded
    def add_evaluation(self, trial_id: int, kind: str, metrics: Dict[str, Any]) -> None:
        with self._tx():
            self.conn.execute("INSERT INTO evaluations (trial_id, kind, metrics, created) VALUES (?, ?, ?, ?)",
                              (trial_id, kind, json.dumps(metrics), time.time()))

    @guarded
    def evaluations(self, kind: Optional[str] = None) -> List[Dict[str, Any]]:
        query, args = "SELECT trial_id, kind, metrics, created FROM evaluations", ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        return [{"trial_id": t, "kind": k, "metrics": json.loads(m), "created": c}
                for t, k, m, c in self.conn.execute(query + " ORDER BY id", args)]
