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
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch

SCHEMA_VERSION = 3
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


class StoreError(RuntimeError):
    """A store that cannot be used as asked (wrong schema, not an experiment, damaged, full, ...)."""


class EmptyStoreError(StoreError):
    """A store file with no tables: a creation cut short (by an older nasforge); nothing to lose."""


def _guarded(method):
    """Every SQLite error inside a store operation becomes a StoreError that says what to do."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from exc
        except json.JSONDecodeError as exc:  # a valid page whose row text was damaged
            raise StoreError(f"{self.path} is damaged (a stored row is not valid JSON: {exc}): restore it from "
                             f"a backup, salvage what is readable with `sqlite3 {self.path} .recover`, or start "
                             "a new experiment") from exc

    return wrapper


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
            self._init_schema(self.conn)  # an empty file from an older nasforge's cut-short creation
            return
        try:
            if not readonly:
                self._check_integrity()
            self._migrate(self.get_meta("schema_version"))
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        """``mode=ro`` sees a running search's latest commits. When it cannot open (no -wal file and no
        right to create the shared-memory index beside the file) no search can be writing either, so
        the file is read as immutable."""
        uri = self.path.resolve().as_uri()
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            if Path(str(self.path) + "-wal").exists() or not (
                    "readonly" in str(exc) or "unable to open" in str(exc)):
                raise
            conn = sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    @staticmethod
    def _init_schema(conn: sqlite3.Connection) -> None:
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA
                           + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;")

    def _create(self) -> None:
        """Build the new store beside its final name and link it into place, so a crash leaves either
        no store or a whole one (never a file without tables), and a store that another process has
        created meanwhile is never replaced."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of {self.path}: {exc.strerror or exc}") from None
        self._remove_dead_partials()
        partial = self.path.with_name(f"{self.path.name}.new-{os.getpid()}")
        try:
            for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                leftover.unlink(missing_ok=True)
            conn = sqlite3.connect(str(partial), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                self._init_schema(conn)
            finally:
                conn.close()  # checkpoints: the file alone is the whole store
            try:
                os.link(partial, self.path)
            except FileExistsError:
                pass  # another process created it a moment ago: use theirs
            except OSError:  # no hard links here (some network or FAT file systems)
                if not self.path.exists():
                    os.replace(partial, self.path)
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from exc
        except OSError as exc:
            raise StoreError(f"cannot create the store {self.path}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)

    def _remove_dead_partials(self) -> None:
        """Stores half-built by processes that died (kill -9 during creation); never a live one's."""
        if os.name != "posix":
            return
        for leftover in self.path.parent.glob(f"{self.path.name}.new-*"):
            pid = leftover.name[len(self.path.name) + 5:].split("-")[0]
            if not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # alive (or not ours to signal): leave it
            except ProcessLookupError:
                leftover.unlink(missing_ok=True)
            except OSError:
                continue

    def _check_integrity(self) -> None:
        """SQLite's own check of every page's structure (not of row contents): cheap next to a
        search, and it turns a damaged file into a refusal before anything is written to it."""
        problems = [r[0] for r in self.conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise StoreError(f"{self.path} is damaged (SQLite quick_check: {'; '.join(problems)[:300]}); "
                             "nothing was written to it. Restore it from a backup, salvage what is readable with "
                             f"`sqlite3 {self.path} .recover`, or start a new experiment")

    def _explain(self, exc: sqlite3.DatabaseError) -> StoreError:
        """What an SQLite error means for the user of this store, and what to do about it."""
        text = str(exc)
        if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in text:
            return StoreError(f"{self.path}: a trial with this number and attempt is already stored ({text}); "
                              "another process has written this experiment at the same time")
        if "full" in text or "disk I/O error" in text:
            return StoreError(f"could not write {self.path}: {text} (the disk is full, over a file size limit, or "
                              "failing); what was committed before is intact: free some space, then continue "
                              "with --resume")
        if "readonly" in text or "read-only" in text:
            return StoreError(f"{self.path} is read-only for this user ({text}): its trials can be read "
                              "(nasforge trials, best), but a search cannot continue it")
        if "locked" in text or "busy" in text:
            return StoreError(f"{self.path} stayed locked by another process for over 30 s ({text}); try again")
        if "malformed" in text or "not a database" in text or "decode" in text or type(exc) is sqlite3.DatabaseError:
            return StoreError(f"{self.path} is damaged ({text}): restore it from a backup, salvage what is "
                              f"readable with `sqlite3 {self.path} .recover`, or start a new experiment")
        return StoreError(f"{self.path}: {text}")

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
            Store(self.path, create=False).close()  # upgrade in place, as readers of version 1 always did
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

    # ---- plumbing -----------------------------------------------------------------------------
    class _Tx:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self):
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
    @_guarded
    def get_meta(self, key: str) -> Optional[str]:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @_guarded
    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @_guarded
    def config(self) -> Optional[Dict[str, Any]]:
        raw = self.get_meta("config")
        return json.loads(raw) if raw else None

    @_guarded
    def set_config(self, config: Dict[str, Any]) -> None:
        self.set_meta("config", json.dumps(config, sort_keys=True))

    # ---- trials -------------------------------------------------------------------------------
    @_guarded
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

    @_guarded
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

    @_guarded
    def mark_interrupted(self, reason: str) -> List[int]:
        """Turn RUNNING trials into FAILED ones that still need a retry; return their ids."""
        with self._tx():
            ids = [r[0] for r in self.conn.execute("SELECT id FROM trials WHERE state = 'RUNNING'")]
            self.conn.execute(
                "UPDATE trials SET state = 'FAILED', error = ?, needs_retry = 1, finished = ? "
                "WHERE state = 'RUNNING'", (reason, time.time()))
        return ids

    @_guarded
    def trials(self, states: Optional[Iterable[str]] = None) -> List[TrialRecord]:
        query = "SELECT * FROM trials"
        args: tuple = ()
        if states is not None:
            states = list(states)
            query += f" WHERE state IN ({', '.join('?' for _ in states)})"
            args = tuple(states)
        rows = self.conn.execute(query + " ORDER BY id", args).fetchall()
        return [self._record(r) for r in rows]

    @_guarded
    def trial(self, trial_id: int) -> TrialRecord:
        row = self.conn.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise StoreError(f"no trial with id {trial_id}")
        return self._record(row)

    @_guarded
    def pending_retries(self) -> List[TrialRecord]:
        rows = self.conn.execute("SELECT * FROM trials WHERE needs_retry = 1 ORDER BY id").fetchall()
        return [self._record(r) for r in rows]

    @_guarded
    def count_finished(self) -> int:
        """Budget slots whose final attempt has finished (COMPLETE, FAILED or PRUNED, no retry due)."""
        row = self.conn.execute(
            "SELECT COUNT(DISTINCT number) FROM trials WHERE state IN ('COMPLETE', 'FAILED', 'PRUNED') "
            "AND needs_retry = 0 AND number NOT IN (SELECT number FROM trials WHERE state = 'RUNNING')").fetchone()
        return int(row[0])

    @_guarded
    def numbers_used(self) -> int:
        row = self.conn.execute("SELECT COUNT(DISTINCT number) FROM trials").fetchone()
        return int(row[0])

    @_guarded
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
        data = _dump_state(small)
        cur = self.conn.execute(
            "INSERT INTO strategy_states (trial_id, keep, created, state, checksum) VALUES (?, ?, ?, ?, ?)",
            (trial_id, int(keep), time.time(), data, hashlib.sha256(data).hexdigest()))
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

    @_guarded
    def latest_strategy_state(self) -> Optional[Dict[str, Any]]:
        """The newest saved state, checked against its checksum (states saved before schema 3 have
        none) and its parts against their content hashes: a damaged one is refused, never loaded."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(strategy_states)")}
        checksum = "checksum" if "checksum" in columns else "NULL"  # a reader of a version 2 store
        row = self.conn.execute(
            f"SELECT id, trial_id, state, {checksum} FROM strategy_states ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        state_id, trial_id, data, expected = row[0], row[1], bytes(row[2]), row[3]
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise self._damaged_state(trial_id, "its checksum does not match")
        try:
            state = _load_state(data)
        except Exception as exc:  # a state saved unchecked (before schema 3) that no longer unpickles
            raise self._damaged_state(trial_id, f"it cannot be read: {type(exc).__name__}") from None
        for key, digest in self.conn.execute("SELECT key, hash FROM state_blobs WHERE state_id = ?", (state_id,)):
            blob = self.conn.execute("SELECT data FROM blobs WHERE hash = ?", (digest,)).fetchone()
            if blob is None:
                raise StoreError(f"{self.path}: the saved strategy state refers to a missing blob {digest}")
            value = bytes(blob[0])
            if hashlib.sha1(value).hexdigest() != digest:
                raise self._damaged_state(trial_id, f"its part {key!r} does not match its content hash")
            state[key] = value
        return state

    def _damaged_state(self, trial_id: Optional[int], why: str) -> StoreError:
        return StoreError(
            f"{self.path}: the strategy state saved with trial id {trial_id} is damaged ({why}), so the search "
            "cannot continue exactly where it stopped; its trials are intact and can be read (nasforge trials, "
            "best). Restore the file from a backup, or start a new experiment")

    @_guarded
    def count_strategy_states(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM strategy_states").fetchone()[0])

    # ---- final evaluations --------------------------------------------------------------------
    @_guarded
    def add_evaluation(self, trial_id: int, kind: str, metrics: Dict[str, Any]) -> None:
        with self._tx():
            self.conn.execute("INSERT INTO evaluations (trial_id, kind, metrics, created) VALUES (?, ?, ?, ?)",
                              (trial_id, kind, json.dumps(metrics), time.time()))

    @_guarded
    def evaluations(self, kind: Optional[str] = None) -> List[Dict[str, Any]]:
        query, args = "SELECT trial_id, kind, metrics, created FROM evaluations", ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        return [{"trial_id": t, "kind": k, "metrics": json.loads(m), "created": c}
                for t, k, m, c in self.conn.execute(query + " ORDER BY id", args)]
