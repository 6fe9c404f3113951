"""The SQLite store: a real file, state round trips, refusals, and a reader in another process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
import torch

from nasforge.store import Store, StoreError


def test_trial_life_cycle_and_strategy_state(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.set_config({"a": 1})
        tid = s.add_trial(0, [1, 2, 3], "h1", 42, {"log_prob": -1.5}, strategy_state={"w": torch.ones(3), "n": 1})
        assert s.trial(tid).state == "RUNNING"
        s.finish_trial(tid, "COMPLETE", {"val_acc": 0.9}, 0.9, 0.729, strategy_state={"w": torch.zeros(3), "n": 2},
                       keep_state=True)
    with Store(path, create=False) as s:
        t = s.trial(tid)
        assert (t.state, t.tokens, t.seed, t.info, t.metrics, t.objective) == (
            "COMPLETE", [1, 2, 3], 42, {"log_prob": -1.5}, {"val_acc": 0.9}, 0.9)
        state = s.latest_strategy_state()
        assert state["n"] == 2 and torch.equal(state["w"], torch.zeros(3))
        assert s.config() == {"a": 1}


def test_old_states_are_pruned_unless_kept(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        for i in range(10):
            tid = s.add_trial(i, [0], f"h{i}", 0, {}, strategy_state={"i": i})
            s.finish_trial(tid, "COMPLETE", {}, 0.5, 0.5, strategy_state={"i": i}, keep_state=(i % 5 == 4))
        assert s.count_strategy_states() == 2 + (0 if 9 % 5 == 4 else 1)
        assert s.latest_strategy_state() == {"i": 9}


def test_interrupted_trials_are_marked_for_retry(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        a = s.add_trial(0, [0], "h", 0, {})
        ids = s.mark_interrupted("driver died")
        assert ids == [a]
        t = s.trial(a)
        assert t.state == "FAILED" and t.needs_retry and t.error == "driver died"
        s.add_trial(0, [0], "h", 0, {}, attempt=1, retry_of=a)
        assert not s.trial(a).needs_retry and s.numbers_used() == 1


def test_best_is_one_per_architecture_and_honours_direction(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        for i, (h, v) in enumerate([("a", 0.5), ("b", 0.9), ("b", 0.8), ("c", 0.7)]):
            tid = s.add_trial(i, [i], h, 0, {})
            s.finish_trial(tid, "COMPLETE", {}, v, v)
        assert [t.objective for t in s.best(3)] == [0.9, 0.7, 0.5]
        assert [t.objective for t in s.best(2, "minimize")] == [0.5, 0.7]


def test_refuses_files_that_are_not_stores_or_have_another_schema(tmp_path):
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE x (a)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a nasforge store"):
        Store(other)
    text = tmp_path / "text.sqlite"
    text.write_text("hello, this is not a database at all" * 50)
    with pytest.raises(StoreError, match="not a nasforge store"):
        Store(text)
    new = tmp_path / "new.sqlite"
    Store(new).close()
    con = sqlite3.connect(new)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(new)
    with pytest.raises(StoreError, match="no experiment store"):
        Store(tmp_path / "absent.sqlite", create=False)


def test_another_process_reads_while_a_transaction_writes(tmp_path):
    path = tmp_path / "s.sqlite"
    writer = Store(path)
    for i in range(20):
        tid = writer.add_trial(i, [i], f"h{i}", 0, {})
        writer.finish_trial(tid, "COMPLETE", {}, 0.1, 0.1)
    writer.conn.execute("BEGIN IMMEDIATE")  # hold a write lock while the reader reads
    writer.conn.execute("UPDATE trials SET reward = 1.0")
    code = ("from nasforge.store import Store; s = Store(%r, create=False); print(len(s.trials()))" % str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    writer.conn.execute("COMMIT")
    writer.close()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "20"
