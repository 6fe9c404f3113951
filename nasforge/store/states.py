"""Strategy states: saved with their trials, checksummed, their large parts stored once by hash.

torch serialises a state (it carries tensors and numpy generator states safely with
``weights_only``); it is imported only when a state is written or read, so that a reader of
trials (``nasforge trials``, a report) does not pay its start-up (2 s).
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any, Dict, Optional

from .errors import StoreError, guarded

BLOB_BYTES = 4096  # state values at least this large are stored once, by content hash


def dump_state(state: Dict[str, Any]) -> bytes:
    import torch  # lazy: see the module's docstring

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_state(blob: bytes) -> Dict[str, Any]:
    import torch  # lazy: see the module's docstring

    return torch.load(io.BytesIO(blob), weights_only=True)


class States:
    """The part of :class:`~nasforge.store.Store` that saves and loads strategy states (uses
    ``conn`` and ``path``)."""

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
        data = dump_state(small)
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

    @guarded
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
            state = load_state(data)
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

    @guarded
    def count_strategy_states(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM strategy_states").fetchone()[0])
