"""The experiment store: one SQLite file holding every trial and the strategy's saved states.

It is the single source of truth. A trial is written (RUNNING, with the strategy state that
proposed it) before it is evaluated, and its result is written together with the strategy state
after it was told, in one transaction, so a crash at any point leaves a consistent file that a
resumed search can continue. WAL mode and a busy timeout let other processes read while a
search writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch

SCHEMA_VERSION = 2
BLOB_BYTES = 4096  # state values at least this large are stored once, by content hash
STATES = ("WAITING", "RUNNING", "COMPLETE", "FAILED", "PRUNED")

_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS trials_state ON trials (state);
CREATE INDEX IF NOT EXISTS trials_objective ON trials (objective);
CREATE TABLE IF NOT EXISTS strategy_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id INTEGER,
    keep INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    state BLOB NOT NULL
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
}


class StoreError(RuntimeError):
    """A store that cannot be used as asked (wrong schema, not an experiment, ...)."""


@dataclass
class TrialRecord:
    id: int
    number: int
    attempt: int
    state: str
    tokens: List[int]
    arch_hash: str
    seed: int
    info: Dict[str, Any]
    metrics: Dict[str, Any]
    objective: Optional[float]
    reward: Optional[float]
    error: Optional[str]
    needs_retry: bool
    started: Optional[float]
    finished: Optional[float]
    feasible: bool = True
    worker: Optional[str] = None

    @property
    def duration(self) -> Optional[float]:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


def _dump_state(state: Dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _load_state(blob: bytes) -> Dict[str, Any]:
    return torch.load(io.BytesIO(blob), weights_only=True)


class Store:
    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"no experiment store at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA busy_timeout = 30000")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a nasforge store: {exc}") from None
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite file but not a nasforge store")
        if "meta" in tables:
            self._migrate(self.get_meta("schema_version"))
        elif create:
            self.conn.executescript(
                "BEGIN IMMEDIATE;" + _SCHEMA
                + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;")
        else:
            raise StoreError(f"{self.path} holds no experiment")

    def _migrate(self, version: Optional[str]) -> None:
        """Bring an older store up to this version, or refuse one this nasforge cannot read."""
        if version is None or not version.isdigit() or int(version) > SCHEMA_VERSION or int(version) < 1:
            raise StoreError(
                f"{self.path} has store schema version {version}, this nasforge reads versions 1 to "
                f"{SCHEMA_VERSION}; open it with the nasforge version that wrote it")
        current = int(version)
        while current < SCHEMA_VERSION:
            try:
                with self._tx():
                    for statement in MIGRATIONS[current]:
                        self.conn.execute(statement)
                    self.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                                      (str(current + 1),))
            except sqlite3.OperationalError as exc:
                if "duplicate column" in str(exc):  # another process migrated it a moment ago
                    current = int(self.get_meta("schema_version"))
                    continue
                raise StoreError(f"could not upgrade {self.path} from schema version {current}: {exc}") from None
            current += 1

    # ---- plumbing -----------------------------------------------------------------------------
    class _Tx:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, exc, tb):
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            return False

    def _tx(self) -> "Store._Tx":
        return Store._Tx(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- experiment metadata ------------------------------------------------------------------
    def get_meta(self, key: str) -> Optional[str]:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def config(self) -> Optional[Dict[str, Any]]:
        raw = self.get_meta("config")
        return json.loads(raw) if raw else None

    def set_config(self, config: Dict[str, Any]) -> None:
        self.set_meta("config", json.dumps(config, sort_keys=True))

    # ---- trials -------------------------------------------------------------------------------
    def add_trial(self, number: int, tokens: Sequence[int], arch_hash: str, seed: int,
                  info: Dict[str, Any], strategy_state: Optional[Dict[str, Any]] = None,
                  attempt: int = 0, retry_of: Optional[int] = None) -> int:
        """Record a RUNNING trial (and the strategy state that proposed it) in one transaction."""
        with self._tx():
            if retry_of is not None:
                self.conn.execute("UPDATE trials SET needs_retry = 0 WHERE id = ?", (retry_of,))
            cur = self.conn.execute(
                "INSERT INTO trials (number, attempt, state, tokens, arch_hash, seed, info, started) "
                "VALUES (?, ?, 'RUNNING', ?, ?, ?, ?, ?)",
                (number, attempt, json.dumps(list(map(int, tokens))), arch_hash, int(seed),
                 json.dumps(info), time.time()),
            )
            trial_id = int(cur.lastrowid)
            if strategy_state is not None:
                self._save_state(trial_id, strategy_state, keep=False)
        self._committed(strategy_state)
        return trial_id

    def finish_trial(self, trial_id: int, state: str, metrics: Dict[str, Any], objective: Optional[float],
                     reward: Optional[float], error: Optional[str] = None,
                     strategy_state: Optional[Dict[str, Any]] = None, keep_state: bool = False,
                     needs_retry: bool = False, feasible: bool = True, worker: Optional[str] = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown trial state {state!r}")
        with self._tx():
            self.conn.execute(
                "UPDATE trials SET state = ?, metrics = ?, objective = ?, reward = ?, error = ?, "
                "needs_retry = ?, finished = ?, feasible = ?, worker = ? WHERE id = ?",
                (state, json.dumps(metrics), objective, reward, error, int(needs_retry), time.time(),
                 int(bool(feasible)), worker, trial_id),
            )
            if strategy_state is not None:
                self._save_state(trial_id, strategy_state, keep=keep_state)
        self._committed(strategy_state)

    def mark_interrupted(self, reason: str) -> List[int]:
        """Turn RUNNING trials into FAILED ones that still need a retry; return their ids."""
        with self._tx():
            ids = [r[0] for r in self.conn.execute("SELECT id FROM trials WHERE state = 'RUNNING'")]
            self.conn.execute(
                "UPDATE trials SET state = 'FAILED', error = ?, needs_retry = 1, finished = ? "
                "WHERE state = 'RUNNING'", (reason, time.time()))
        return ids

    def trials(self, states: Optional[Iterable[str]] = None) -> List[TrialRecord]:
        query = "SELECT * FROM trials"
        args: tuple = ()
        if states is not None:
            states = list(states)
            query += f" WHERE state IN ({', '.join('?' for _ in states)})"
            args = tuple(states)
        rows = self.conn.execute(query + " ORDER BY id", args).fetchall()
        return [self._record(r) for r in rows]

    def trial(self, trial_id: int) -> TrialRecord:
        row = self.conn.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise StoreError(f"no trial with id {trial_id}")
        return self._record(row)

    def pending_retries(self) -> List[TrialRecord]:
        rows = self.conn.execute("SELECT * FROM trials WHERE needs_retry = 1 ORDER BY id").fetchall()
        return [self._record(r) for r in rows]

    def count_finished(self) -> int:
        """Budget slots whose final attempt has finished (COMPLETE, FAILED or PRUNED, no retry due)."""
        row = self.conn.execute(
            "SELECT COUNT(DISTINCT number) FROM trials WHERE state IN ('COMPLETE', 'FAILED', 'PRUNED') "
            "AND needs_retry = 0 AND number NOT IN (SELECT number FROM trials WHERE state = 'RUNNING')").fetchone()
        return int(row[0])

    def numbers_used(self) -> int:
        row = self.conn.execute("SELECT COUNT(DISTINCT number) FROM trials").fetchone()
        return int(row[0])

    def best(self, k: int = 1, direction: str = "maximize") -> List[TrialRecord]:
        """The ``k`` completed, feasible trials with the best objective (one per architecture)."""
        order = "DESC" if direction == "maximize" else "ASC"
        rows = self.conn.execute(
            "SELECT * FROM trials WHERE state = 'COMPLETE' AND feasible = 1 AND objective IS NOT NULL "
            f"ORDER BY objective {order}, id ASC")  # read lazily: usually the first rows suffice
        seen, out = set(), []
        for r in rows:
            rec = self._record(r)
            if rec.arch_hash in seen:
                continue
            seen.add(rec.arch_hash)
            out.append(rec)
            if len(out) == k:
                break
        return out

    def _record(self, row: sqlite3.Row) -> TrialRecord:
        return TrialRecord(int(row["id"]), int(row["number"]), int(row["attempt"]), row["state"],
                           json.loads(row["tokens"]), row["arch_hash"], int(row["seed"]), json.loads(row["info"]),
                           json.loads(row["metrics"]), row["objective"], row["reward"], row["error"],
                           bool(row["needs_retry"]), row["started"], row["finished"], bool(row["feasible"]),
                           row["worker"])

    # ---- strategy states ----------------------------------------------------------------------
    def _committed(self, strategy_state: Optional[Dict[str, Any]]) -> None:
        """After a commit: the blobs of the state just saved are known to be stored."""
        if strategy_state is not None:
            self._newest_blobs = self._pending_blobs

    def _save_state(self, trial_id: Optional[int], state: Dict[str, Any], keep: bool) -> None:
        """Large ``bytes`` values of the state (a strategy's pre-serialised weights) go to the blobs
        table once, by content hash: between two controller updates every saved state shares them.
        Only the newest state and the ones marked ``keep`` stay; a blob goes with its last state."""
        small, refs = {}, {}
        newest = getattr(self, "_newest_blobs", {})  # key -> (bytes, hash) of the newest state, still stored
        for key, value in state.items():
            if isinstance(value, bytes) and len(value) >= BLOB_BYTES:
                if key in newest and newest[key][0] is value:  # unchanged since the last save: no hashing
                    refs[key] = newest[key][1]
                    continue
                digest = hashlib.sha1(value).hexdigest()
                if self.conn.execute("SELECT 1 FROM blobs WHERE hash = ?", (digest,)).fetchone() is None:
                    self.conn.execute("INSERT INTO blobs (hash, data) VALUES (?, ?)", (digest, value))
                refs[key] = digest
            else:
                small[key] = value
        cur = self.conn.execute("INSERT INTO strategy_states (trial_id, keep, created, state) VALUES (?, ?, ?, ?)",
                                (trial_id, int(keep), time.time(), _dump_state(small)))
        new_id = int(cur.lastrowid)
        self.conn.executemany("INSERT INTO state_blobs (state_id, key, hash) VALUES (?, ?, ?)",
                              [(new_id, key, digest) for key, digest in refs.items()])
        self._pending_blobs = {key: (state[key], digest) for key, digest in refs.items()}
        old = [r[0] for r in self.conn.execute(
            "SELECT id FROM strategy_states WHERE keep = 0 AND id < ?", (new_id,))]  # the partial index
        if not old:
            return
        marks = ", ".join("?" for _ in old)
        hashes = {r[0] for r in self.conn.execute(f"SELECT hash FROM state_blobs WHERE state_id IN ({marks})", old)}
        self.conn.execute(f"DELETE FROM strategy_states WHERE id IN ({marks})", old)
        self.conn.execute(f"DELETE FROM state_blobs WHERE state_id IN ({marks})", old)
        for digest in hashes:
            self.conn.execute("DELETE FROM blobs WHERE hash = ? AND NOT EXISTS "
                              "(SELECT 1 FROM state_blobs WHERE hash = ?)", (digest, digest))

    def latest_strategy_state(self) -> Optional[Dict[str, Any]]:
        row = self.conn.execute("SELECT id, state FROM strategy_states ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        state = _load_state(row[1])
        for key, digest in self.conn.execute("SELECT key, hash FROM state_blobs WHERE state_id = ?", (row[0],)):
            blob = self.conn.execute("SELECT data FROM blobs WHERE hash = ?", (digest,)).fetchone()
            if blob is None:
                raise StoreError(f"{self.path}: the saved strategy state refers to a missing blob {digest}")
            state[key] = bytes(blob[0])
        return state

    def count_strategy_states(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM strategy_states").fetchone()[0])

    # ---- final evaluations --------------------------------------------------------------------
    def add_evaluation(self, trial_id: int, kind: str, metrics: Dict[str, Any]) -> None:
        with self._tx():
            self.conn.execute("INSERT INTO evaluations (trial_id, kind, metrics, created) VALUES (?, ?, ?, ?)",
                              (trial_id, kind, json.dumps(metrics), time.time()))

    def evaluations(self, kind: Optional[str] = None) -> List[Dict[str, Any]]:
        query, args = "SELECT trial_id, kind, metrics, created FROM evaluations", ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        return [{"trial_id": t, "kind": k, "metrics": json.loads(m), "created": c}
                for t, k, m, c in self.conn.execute(query + " ORDER BY id", args)]
