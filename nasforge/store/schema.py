"""The store's tables, its schema version and the migrations that bring older stores up to it."""

from __future__ import annotations

import os
import sqlite3
from typing import Optional

from .errors import StoreError

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    number INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('WAITING', 'RUNNING', 'COMPLETE', 'FAILED', 'PRUNED')),
    tokens TEXT NOT NULL,
    arch_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    objective REAL,
    reward REAL,
    error TEXT,
    needs_retry INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    feasible INTEGER NOT NULL DEFAULT 1,
    worker TEXT
);
CREATE INDEX IF NOT EXISTS trials_number ON trials (number);
CREATE UNIQUE INDEX IF NOT EXISTS trials_number_attempt ON trials (number, attempt);
CREATE INDEX IF NOT EXISTS trials_state ON trials (state);
CREATE INDEX IF NOT EXISTS trials_objective ON trials (objective);
CREATE TABLE IF NOT EXISTS strategy_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id INTEGER,
    keep INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    state BLOB NOT NULL,
    checksum TEXT
);
CREATE INDEX IF NOT EXISTS strategy_states_unkept ON strategy_states (id) WHERE keep = 0;
CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS state_blobs (state_id INTEGER NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS state_blobs_state ON state_blobs (state_id);
CREATE INDEX IF NOT EXISTS state_blobs_hash ON state_blobs (hash);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    metrics TEXT NOT NULL,
    created REAL NOT NULL
);
"""

# Each step takes a store from version v to v + 1, inside the transaction that records v + 1.
# Columns are only ever added (with defaults that are true of the older trials), never re-used.
MIGRATIONS = {
    1: [  # 2: hardware-aware search (feasible: met every hard constraint) and executors (worker)
        "ALTER TABLE trials ADD COLUMN feasible INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE trials ADD COLUMN worker TEXT",
        "CREATE INDEX IF NOT EXISTS trials_objective ON trials (objective)",
        # large parts of strategy states (a controller's weights), stored once however many states share them
        "CREATE INDEX IF NOT EXISTS strategy_states_unkept ON strategy_states (id) WHERE keep = 0",
        "CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS state_blobs (state_id INTEGER NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS state_blobs_state ON state_blobs (state_id)",
        "CREATE INDEX IF NOT EXISTS state_blobs_hash ON state_blobs (hash)",
    ],
    2: [  # 3: the last line of defence against two writers, and checksummed strategy states
        # (states saved before have none and are loaded unchecked)
        "ALTER TABLE strategy_states ADD COLUMN checksum TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS trials_number_attempt ON trials (number, attempt)",
    ],
}
READABLE_UNMIGRATED = 2  # the oldest version a read-only reader can read as it is (the trial columns of 2)


def init_schema(conn: sqlite3.Connection) -> None:
    conn.executescript("BEGIN IMMEDIATE;" + SCHEMA
                       + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;")


class SchemaChecks:
    """The part of :class:`~nasforge.store.Store` that checks a file's structure and upgrades its
    schema (uses the store's ``conn``, ``path``, ``readonly``, ``_tx`` and ``get_meta``)."""

    def _check_integrity(self) -> None:
        """SQLite's own check of every page's structure (not of row contents): cheap next to a
        search, and it turns a damaged file into a refusal before anything is written to it."""
        problems = [r[0] for r in self.conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise StoreError(f"{self.path} is damaged (SQLite quick_check: {'; '.join(problems)[:300]}); "
                             "nothing was written to it. Restore it from a backup, salvage what is readable with "
                             f"`sqlite3 {self.path} .recover`, or start a new experiment")

    def _migrate(self, version: Optional[str]) -> None:
        """Bring an older store up to this version, or refuse one this nasforge cannot read."""
        if version is None or not version.isdigit() or int(version) > SCHEMA_VERSION or int(version) < 1:
            raise StoreError(
                f"{self.path} has store schema version {version}, this nasforge reads versions 1 to "
                f"{SCHEMA_VERSION}; open it with the nasforge version that wrote it")
        current = int(version)
        if self.readonly and current < SCHEMA_VERSION:
            if current >= READABLE_UNMIGRATED:
                return  # what a reader reads is there; the next writer upgrades it
            if not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
                raise StoreError(f"{self.path} has store schema version {current}, which this nasforge reads only "
                                 "after upgrading it, and this user may not write it; ask its owner to open it once")
            type(self)(self.path, create=False).close()  # upgrade in place, as readers of version 1 always did
            return
        while current < SCHEMA_VERSION:
            try:
                with self._tx():
                    for statement in MIGRATIONS[current]:
                        if not self._has_column(statement):
                            self.conn.execute(statement)
                    self.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                                      (str(current + 1),))
            except sqlite3.IntegrityError:  # the unique (number, attempt) index meets two writers' trials
                twice = self.conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM trials GROUP BY number, attempt "
                                          "HAVING COUNT(*) > 1)").fetchone()[0]
                raise StoreError(
                    f"{self.path} holds {twice} trial numbers written twice, by two searches that ran on it at "
                    "once (before nasforge locked experiments); its trials can still be read (nasforge trials, "
                    "best), but it cannot be continued: start a new experiment") from None
            except sqlite3.OperationalError as exc:
                if "duplicate column" in str(exc):  # another process migrated it a moment ago
                    now = int(self.get_meta("schema_version"))
                    if now > current:
                        current = now
                        continue
                raise StoreError(f"could not upgrade {self.path} from schema version {current}: {exc}") from None
            current += 1

    def _has_column(self, statement: str) -> bool:
        """Whether an ``ALTER TABLE t ADD COLUMN c`` step is already done (a store built by a newer
        schema and then labelled older, or a migration another process finished)."""
        words = statement.split()
        if words[:2] != ["ALTER", "TABLE"] or words[3:5] != ["ADD", "COLUMN"]:
            return False
        return words[5] in {r[1] for r in self.conn.execute(f"PRAGMA table_info({words[2]})")}
