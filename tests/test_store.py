"""The SQLite store: a real file, state round trips, refusals, and a reader in another process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
import torch

from nasforge.store import SCHEMA_VERSION, EmptyStoreError, Store, StoreError, dump_state


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


# the trials table exactly as schema version 1 wrote it
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT, number INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('WAITING', 'RUNNING', 'COMPLETE', 'FAILED', 'PRUNED')),
    tokens TEXT NOT NULL, arch_hash TEXT NOT NULL, seed INTEGER NOT NULL, info TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}', objective REAL, reward REAL, error TEXT,
    needs_retry INTEGER NOT NULL DEFAULT 0, started REAL, finished REAL);
CREATE TABLE strategy_states (id INTEGER PRIMARY KEY AUTOINCREMENT, trial_id INTEGER,
    keep INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, state BLOB NOT NULL);
CREATE TABLE evaluations (id INTEGER PRIMARY KEY AUTOINCREMENT, trial_id INTEGER NOT NULL,
    kind TEXT NOT NULL, metrics TEXT NOT NULL, created REAL NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO meta VALUES ('config', '{"budget": 3}');
INSERT INTO trials (number, state, tokens, arch_hash, seed, metrics, objective, reward, started, finished)
    VALUES (0, 'COMPLETE', '[1, 2]', 'h0', 7, '{"val_acc": 0.8}', 0.8, 0.512, 1.0, 2.0);
INSERT INTO trials (number, state, tokens, arch_hash, seed, error, needs_retry, started, finished)
    VALUES (1, 'FAILED', '[3, 4]', 'h1', 8, 'interrupted', 1, 3.0, 4.0);
"""


def test_a_version_1_store_is_migrated_in_place_without_losing_anything(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    con.close()
    with Store(path, create=False) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert store.config() == {"budget": 3}
        first, second = store.trials()
        assert (first.tokens, first.objective, first.metrics, first.feasible, first.worker) == \
            ([1, 2], 0.8, {"val_acc": 0.8}, True, None)
        assert second.needs_retry and second.error == "interrupted"
        assert [t.number for t in store.best(5)] == [0]
        store.finish_trial(first.id, "COMPLETE", {}, 0.9, 0.729, feasible=False, worker="local-1")
        assert store.best(5) == []  # an infeasible trial is never the best
    with Store(path, create=False) as again:  # opening a migrated store changes nothing more
        assert again.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert again.trials()[0].worker == "local-1"


def test_large_state_parts_are_stored_once_and_dropped_with_their_last_state(tmp_path):
    weights_a, weights_b = b"a" * 10_000, b"b" * 10_000
    with Store(tmp_path / "s.sqlite") as s:
        blobs = lambda: s.conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0]  # noqa: E731
        for i in range(5):  # five states between two updates share one copy of the weights
            tid = s.add_trial(i, [i], f"h{i}", 0, {}, strategy_state={"policy": weights_a, "step": i})
        assert blobs() == 1 and s.latest_strategy_state() == {"policy": weights_a, "step": 4}
        s.finish_trial(tid, "COMPLETE", {}, 0.5, 0.5, strategy_state={"policy": weights_b, "step": 5},
                       keep_state=True)  # an update, kept
        assert blobs() == 1  # nothing refers to weights_a any more
        assert s.latest_strategy_state() == {"policy": weights_b, "step": 5}
        s.add_trial(9, [9], "h9", 0, {}, strategy_state={"policy": weights_a, "step": 6})
        s.add_trial(10, [10], "h10", 0, {}, strategy_state={"policy": weights_a, "step": 7})
        assert blobs() == 2  # weights_b stays with its kept state
        assert s.count_strategy_states() == 2
        assert s.latest_strategy_state() == {"policy": weights_a, "step": 7}


# ---- what SQLite does not promise by itself (issue 14) -------------------------------------------
def _store_with_states(path):
    with Store(path) as s:
        for i in range(3):
            tid = s.add_trial(i, [i], f"h{i}", 0, {}, strategy_state={"policy": bytes([i]) * 10_000, "step": i})
            s.finish_trial(tid, "COMPLETE", {}, 0.5, 0.5)
    return path


def test_a_damaged_strategy_state_is_refused_not_loaded(tmp_path):
    path = _store_with_states(tmp_path / "s.sqlite")
    con = sqlite3.connect(path)
    con.execute("UPDATE strategy_states SET state = ? WHERE id = (SELECT MAX(id) FROM strategy_states)",
                (dump_state({"step": 99}),))  # a readable state, but not the one the checksum was taken of
    con.commit()
    with Store(path, create=False) as s, pytest.raises(StoreError, match="checksum does not match"):
        s.latest_strategy_state()
    con.execute("UPDATE strategy_states SET checksum = NULL")  # saved before checksums: loaded unchecked
    con.commit()
    with Store(path, create=False) as s:
        assert s.latest_strategy_state()["step"] == 99
    con.execute("UPDATE blobs SET data = ?", (b"x" * 10_000,))  # the weights, damaged
    con.commit()
    con.close()
    with Store(path, create=False) as s, pytest.raises(StoreError, match="'policy' does not match its content hash"):
        s.latest_strategy_state()


def test_a_version_2_store_gains_the_unique_index_and_checksums_and_readers_leave_it_alone(tmp_path):
    path = _store_with_states(tmp_path / "s.sqlite")
    con = sqlite3.connect(path)
    con.execute("DROP INDEX trials_number_attempt")
    con.execute("ALTER TABLE strategy_states DROP COLUMN checksum")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.commit()
    with Store(path, readonly=True) as reader:  # a reader reads version 2 as it is, and writes nothing
        assert len(reader.trials()) == 3 and reader.latest_strategy_state()["step"] == 2
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    with Store(path, create=False) as s:
        assert s.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert s.latest_strategy_state()["step"] == 2  # its unchecked state still loads
        with pytest.raises(StoreError, match="already stored"):
            s.add_trial(1, [1], "h1", 0, {})
    con.execute("DROP INDEX trials_number_attempt")  # as two writers left it before the lock existed
    con.execute("INSERT INTO trials (number, attempt, state, tokens, arch_hash, seed) VALUES (1, 0, 'COMPLETE', "
                "'[1]', 'h1', 0)")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="holds 1 trial numbers written twice"):
        Store(path, create=False)
    with Store(path, readonly=True) as reader:
        assert len(reader.trials()) == 4


def test_a_reader_never_writes_and_refuses_to(tmp_path):
    path = _store_with_states(tmp_path / "s.sqlite")
    before = path.read_bytes()
    with Store(path, readonly=True) as s:
        assert len(s.trials()) == 3
        with pytest.raises(StoreError, match="read-only"):
            s.add_trial(5, [5], "h5", 0, {})
    assert path.read_bytes() == before
    with pytest.raises(StoreError, match="no experiment store"):
        Store(tmp_path / "absent.sqlite", readonly=True)
    assert not (tmp_path / "absent.sqlite").exists()


def test_a_store_without_tables_counts_as_absent_and_creation_leaves_no_partial(tmp_path):
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)  # what a creation cut short by an older nasforge left: a header, no tables
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    with pytest.raises(EmptyStoreError, match="holds no experiment: its creation was cut short"):
        Store(path, create=False)
    with Store(path) as s:  # a writer simply builds it
        assert s.get_meta("schema_version") == str(SCHEMA_VERSION)
    dead = tmp_path / "new.sqlite.new-999999999"  # a partial of a process that no longer exists
    live = tmp_path / f"new.sqlite.new-{os.getppid()}"
    dead.write_bytes(b"partial")
    live.write_bytes(b"partial")
    Store(tmp_path / "new.sqlite").close()
    assert sorted(p.name for p in tmp_path.glob("new.sqlite*")) == ["new.sqlite", live.name]


def test_damaged_pages_are_a_store_error_for_readers_and_writers(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        for i in range(300):
            tid = s.add_trial(i, [i], f"arch-{i:04d}", 0, {"note": "x" * 200})
            s.finish_trial(tid, "COMPLETE", {}, i / 300, i / 300)
    data = bytearray(path.read_bytes())
    at = data.find(b"arch-0150")
    page = at // 4096 * 4096
    data[page:page + 4096] = bytes(range(256)) * 16
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="is damaged"):
        Store(path, create=False)  # a writer checks every page first
    with Store(path, readonly=True) as reader, pytest.raises(StoreError, match=r"s.sqlite is damaged \(database disk"):
        reader.trials()


def test_a_damaged_row_is_a_store_error_not_a_json_traceback(tmp_path):
    path = _store_with_states(tmp_path / "s.sqlite")
    con = sqlite3.connect(path)
    con.execute("UPDATE trials SET metrics = '{\"val_a\x01' WHERE number = 1")  # the page is fine, the text is not
    con.commit()
    con.close()
    with Store(path, readonly=True) as reader, pytest.raises(StoreError, match="is damaged .a stored row is not valid JSON"):
        reader.trials()
