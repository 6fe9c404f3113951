"""Trial records: what a trial is, and the store's operations on trials."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

from .errors import StoreError, guarded

STATES = ("WAITING", "RUNNING", "COMPLETE", "FAILED", "PRUNED")


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


class Trials:
    """The part of :class:`~nasforge.store.Store` that writes and reads trials (uses ``conn``,
    ``_tx`` and, for the strategy state saved with a trial, ``_save_state`` and ``_committed``)."""

    @guarded
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

    @guarded
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

    @guarded
    def mark_interrupted(self, reason: str) -> List[int]:
        """Turn RUNNING trials into FAILED ones that still need a retry; return their ids."""
        with self._tx():
            ids = [r[0] for r in self.conn.execute("SELECT id FROM trials WHERE state = 'RUNNING'")]
            self.conn.execute(
                "UPDATE trials SET state = 'FAILED', error = ?, needs_retry = 1, finished = ? "
                "WHERE state = 'RUNNING'", (reason, time.time()))
        return ids

    @guarded
    def trials(self, states: Optional[Iterable[str]] = None) -> List[TrialRecord]:
        query = "SELECT * FROM trials"
        args: tuple = ()
        if states is not None:
            states = list(states)
            query += f" WHERE state IN ({', '.join('?' for _ in states)})"
            args = tuple(states)
        rows = self.conn.execute(query + " ORDER BY id", args).fetchall()
        return [self._record(r) for r in rows]

    @guarded
    def trial(self, trial_id: int) -> TrialRecord:
        row = self.conn.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise StoreError(f"no trial with id {trial_id}")
        return self._record(row)

    @guarded
    def pending_retries(self) -> List[TrialRecord]:
        rows = self.conn.execute("SELECT * FROM trials WHERE needs_retry = 1 ORDER BY id").fetchall()
        return [self._record(r) for r in rows]

    @guarded
    def final_states(self) -> Dict[str, int]:
        """How many budget slots are in each state by their last attempt: a trial interrupted (or
        failed and retried) counts once, as what its retry became."""
        rows = self.conn.execute(
            "SELECT state, COUNT(*) FROM trials AS t WHERE attempt = "
            "(SELECT MAX(attempt) FROM trials AS u WHERE u.number = t.number) GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    @guarded
    def count_finished(self) -> int:
        """Budget slots whose final attempt has finished (COMPLETE, FAILED or PRUNED, no retry due)."""
        row = self.conn.execute(
            "SELECT COUNT(DISTINCT number) FROM trials WHERE state IN ('COMPLETE', 'FAILED', 'PRUNED') "
            "AND needs_retry = 0 AND number NOT IN (SELECT number FROM trials WHERE state = 'RUNNING')").fetchone()
        return int(row[0])

    @guarded
    def numbers_used(self) -> int:
        row = self.conn.execute("SELECT COUNT(DISTINCT number) FROM trials").fetchone()
        return int(row[0])

    @guarded
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
