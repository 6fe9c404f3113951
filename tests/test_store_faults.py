"""Faults an experiment store meets in real use, tried on real ``nasforge`` processes.

The suite is a matrix: each fault (a damaged header, damaged middle pages, a damaged strategy
state, a read-only file or folder, trials written twice by two writers before locks existed) is
applied to a copy of one finished tabular search, then every store operation (the readers
``trials``, ``best``, ``pareto`` and the writer ``search --resume``) is run on it as its own
process, and its exit status and message are checked against what docs/reliability.md promises.
A new operation joins the suite by being added to ``OPERATIONS``; a new fault, to ``FAULTS``.
Besides the matrix: two writers at once, kill -9 at random points (store creation included),
disk full, SIGINT and SIGTERM.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from nasforge.config import ConfigError, SearchConfig
from nasforge.experiment_lock import LOCK_FILE, ExperimentLock, running_writer
from nasforge.search import run_search
from nasforge.store import Store, StoreError

NASFORGE = [sys.executable, "-m", "nasforge"]
SPACE = ["--space", "nb201-cifar10"]
BASE_BUDGET = 40
LONG = ["--strategy", "random", "--budget", "100000"]  # a search still running whenever it is stopped; small store
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# root may write any file: a command meant to meet file permissions runs without the capabilities
# that bypass them (the interpreter may live where only root can enter, so the user stays root)
DROP_PRIVILEGE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"] if AS_ROOT else []


def nasforge(args: List[str], cwd: Path, timeout: float = 180, bound_by_permissions: bool = False,
             shell_prefix: str = "") -> subprocess.CompletedProcess:
    """``python -m nasforge ARGS`` in ``cwd``; ``shell_prefix`` (e.g. a ulimit) runs it through bash."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NASFORGE_DEBUG", None)
    command = (DROP_PRIVILEGE if bound_by_permissions else []) + NASFORGE + args
    if shell_prefix:
        command = ["bash", "-c", shell_prefix + "; exec " + " ".join(map(shlex.quote, command))]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def start(args: List[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(NASFORGE + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows(experiment: Path) -> List[Tuple[int, int, str, int]]:
    """(number, attempt, state, needs_retry) of every stored trial, read without nasforge."""
    con = sqlite3.connect(f"file:{experiment / 'trials.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT number, attempt, state, needs_retry FROM trials ORDER BY id").fetchall()
    finally:
        con.close()


def completed(experiment: Path) -> int:
    try:
        return sum(r[2] == "COMPLETE" for r in rows(experiment))
    except sqlite3.Error:
        return 0


def audit(experiment: Path, budget: int) -> Dict[str, int]:
    """Lost: budget slots whose last attempt has no result and no retry due; pending: retries due
    (an interrupted search's, run on resume); duplicated: two rows of one attempt, or two results
    of one slot; running: rows left RUNNING."""
    stored = rows(experiment)
    last: Dict[int, Tuple[int, int, str, int]] = {}
    attempts: Dict[Tuple[int, int], int] = {}
    complete: Dict[int, int] = {}
    for row in stored:
        number, attempt, state, _ = row
        attempts[(number, attempt)] = attempts.get((number, attempt), 0) + 1
        complete[number] = complete.get(number, 0) + (state in ("COMPLETE", "PRUNED"))
        if number not in last or attempt > last[number][1]:
            last[number] = row
    pending = {n for n, r in last.items() if r[3]}
    final = {n for n, r in last.items() if r[2] in ("COMPLETE", "FAILED", "PRUNED") and not r[3]}
    return {"lost": sum(1 for n in range(budget) if n not in final and n not in pending),
            "pending": len(pending),
            "duplicated": sum(c - 1 for c in attempts.values() if c > 1) + sum(c - 1 for c in complete.values() if c > 1),
            "running": sum(r[2] == "RUNNING" for r in stored),
            "beyond_budget": sum(1 for n in last if n >= budget)}


CLEAN = {"lost": 0, "pending": 0, "duplicated": 0, "running": 0, "beyond_budget": 0}


def wait_until(condition: Callable[[], bool], proc: Optional[subprocess.Popen], timeout: float = 120,
               poll: float = 0.01) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended first: {proc.communicate()}")
        assert time.time() < deadline, "timed out"
        time.sleep(poll)


# ---- one finished search, copied for each test -------------------------------------------------
@pytest.fixture(scope="module")
def finished_search(tmp_path_factory) -> Path:
    """A tabular REINFORCE search of BASE_BUDGET trials (its controller's weights are a blob)."""
    experiment = tmp_path_factory.mktemp("base") / "exp"
    config = SearchConfig()
    config.update({"space": {"name": "nb201-cifar10"}, "budget": BASE_BUDGET})
    run_search(config, experiment)
    assert not Path(f"{experiment / 'trials.sqlite'}-wal").exists()  # checkpointed: the file is the store
    return experiment


@pytest.fixture()
def workdir(tmp_path):
    yield tmp_path
    for sub in tmp_path.rglob("*"):  # a read-only folder made by a test is removed with the rest
        if sub.is_dir():
            sub.chmod(0o755)


def copy_experiment(source: Path, workdir: Path) -> Path:
    target = workdir / "exp"
    shutil.copytree(source, target)
    return target


# ---- faults --------------------------------------------------------------------------------------
def _store_bytes(experiment: Path) -> bytearray:
    return bytearray((experiment / "trials.sqlite").read_bytes())


def _page_size(experiment: Path) -> int:
    con = sqlite3.connect(experiment / "trials.sqlite")
    try:
        return con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()


def _query(experiment: Path, sql: str):
    con = sqlite3.connect(f"file:{experiment / 'trials.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchone()
    finally:
        con.close()


def _garble_everywhere(experiment: Path, needle: bytes, whole_page: bool) -> int:
    """Overwrite every copy of ``needle`` in the file (live row and stale copies in free pages)
    with garbage, or the whole page around each copy; returns how many copies."""
    data, rng = _store_bytes(experiment), random.Random(0)
    page, found, at = _page_size(experiment), 0, data.find(needle)
    while at >= 0:
        start, end = ((at // page) * page, (at // page + 1) * page) if whole_page else (at, at + len(needle))
        assert start >= page, "never the header page here"
        data[start:end] = bytes(rng.randrange(256) for _ in range(end - start))
        found += 1
        at = data.find(needle, end)
    (experiment / "trials.sqlite").write_bytes(bytes(data))
    return found


def damage_header(experiment: Path) -> None:
    path = experiment / "trials.sqlite"
    data = _store_bytes(experiment)
    data[0:100] = bytes(random.Random(1).randrange(256) for _ in range(100))
    path.write_bytes(bytes(data))


def damage_middle(experiment: Path) -> None:
    """The pages holding the best trial's row: every reader of the trials meets them."""
    arch_hash = _query(experiment, "SELECT arch_hash FROM trials WHERE state = 'COMPLETE' "
                                   "ORDER BY objective DESC LIMIT 1")[0]
    assert _garble_everywhere(experiment, arch_hash.encode(), whole_page=True) >= 1


def damage_state(experiment: Path) -> None:
    """Bytes inside the newest strategy state (the small part, pickled): its page stays valid."""
    state = bytes(_query(experiment, "SELECT state FROM strategy_states ORDER BY id DESC LIMIT 1")[0])
    assert len(state) > 600
    assert _garble_everywhere(experiment, state[400:464], whole_page=False) >= 1


def damage_state_blob(experiment: Path) -> None:
    """Bytes inside the controller's weights (a blob shared by the newest states)."""
    blob = bytes(_query(experiment, "SELECT data FROM blobs WHERE hash IN (SELECT hash FROM state_blobs WHERE "
                                    "state_id = (SELECT MAX(id) FROM strategy_states) AND key = 'policy')")[0])
    assert _garble_everywhere(experiment, blob[len(blob) // 2:len(blob) // 2 + 64], whole_page=False) >= 1


def read_only_file(experiment: Path) -> None:
    (experiment / "trials.sqlite").chmod(0o444)


def read_only_folder(experiment: Path) -> None:
    (experiment / "trials.sqlite").chmod(0o644)
    (experiment / LOCK_FILE).unlink(missing_ok=True)
    experiment.chmod(0o555)


def written_twice(experiment: Path) -> None:
    """A store as two simultaneous writers left it before experiments were locked (schema 2)."""
    con = sqlite3.connect(experiment / "trials.sqlite")
    con.execute("DROP INDEX trials_number_attempt")
    con.execute("INSERT INTO trials (number, attempt, state, tokens, arch_hash, seed, info, metrics, objective, "
                "reward, started, finished) SELECT number, attempt, state, tokens, arch_hash, seed, info, metrics, "
                "objective, reward, started, finished FROM trials WHERE number < 3")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.commit()
    con.close()


@dataclass
class Fault:
    apply: Callable[[Path], None]
    readers: Tuple[int, str]  # exit status and a piece of the message of trials / best / pareto
    writer: Tuple[int, str]  # ... and of search --resume
    bound_by_permissions: bool = False  # run the commands as a user whom file permissions bind


READ_OK = (0, "")
FAULTS = {
    "header": Fault(damage_header, (2, "not a nasforge store, or its header is damaged"),
                    (2, "not a nasforge store, or its header is damaged")),
    "middle pages": Fault(damage_middle, (2, "is damaged (database disk image is malformed)"), (2, "is damaged")),
    "strategy state": Fault(damage_state, READ_OK,
                            (2, "is damaged (its checksum does not match), so the search cannot continue")),
    "state blob": Fault(damage_state_blob, READ_OK,
                        (2, "is damaged (its part 'policy' does not match its content hash)")),
    "read-only file": Fault(read_only_file, READ_OK, (2, "is read-only for this user"), True),
    "read-only folder": Fault(read_only_folder, READ_OK, (2, "cannot write"), True),
    "written twice": Fault(written_twice, READ_OK, (2, "holds 3 trial numbers written twice")),
}
OPERATIONS = {  # name -> (arguments, writes)
    "trials": (["trials", "--experiment", "exp"], False),
    "best": (["best", "--experiment", "exp"], False),
    "pareto": (["pareto", "--experiment", "exp", "--metrics", "val_acc,ptq_acc"], False),
    "search --resume": (["search", "--resume", "--experiment", "exp", "--budget", str(BASE_BUDGET + 10), "--quiet"],
                        True),
}


SLOW_OPERATIONS = ("best", "pareto")  # readers like trials: in the full run (-m slow) only, to spare CPU


@pytest.mark.parametrize("operation", [pytest.param(o, marks=pytest.mark.slow) if o in SLOW_OPERATIONS else o
                                       for o in OPERATIONS])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_store_operation_meets_every_fault_with_a_sentence(finished_search, workdir, fault, operation):
    experiment = copy_experiment(finished_search, workdir)
    FAULTS[fault].apply(experiment)
    before = (experiment / "trials.sqlite").read_bytes()
    args, writes = OPERATIONS[operation]
    if FAULTS[fault].bound_by_permissions and AS_ROOT and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: file permissions cannot be made to bind")
    out = nasforge(args, workdir, bound_by_permissions=FAULTS[fault].bound_by_permissions)
    code, message = FAULTS[fault].writer if writes else FAULTS[fault].readers
    assert out.returncode == code, out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    if code == 2:
        assert out.stderr.startswith(f"nasforge {args[0]}: error: ") and out.stderr.count("\n") == 1, out.stderr
        assert message in out.stderr and "exp" in out.stderr, out.stderr  # what happened, to which experiment
        assert (experiment / "trials.sqlite").read_bytes() == before  # refused: nothing written
    elif operation == "trials":
        assert f"exp: {len(rows(experiment))} trials" in out.stdout
    if not writes:
        assert (experiment / "trials.sqlite").read_bytes() == before  # a reader never writes


# ---- one writer per experiment -------------------------------------------------------------------
def test_two_searches_at_once_one_runs_the_other_is_refused_naming_it(workdir):
    args = ["search", *SPACE, "--budget", "300", "--experiment", "same", "--quiet"]
    procs = [start(args, workdir), start(args, workdir)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
    assert f"experiment same is being written by process {procs[winner].pid} on " in outs[loser][1], outs[loser][1]
    assert audit(workdir / "same", 300) == CLEAN
    assert len(rows(workdir / "same")) == 300


def test_resume_while_a_search_runs_is_refused_and_adds_nothing(workdir):
    runner = start(["search", *SPACE, *LONG, "--experiment", "exp", "--quiet"], workdir)
    try:
        wait_until(lambda: completed(workdir / "exp") >= 20, runner)
        others = [start(args, workdir) for args in (  # all at once, while the search runs
            ["search", "--resume", "--experiment", "exp", "--quiet"],
            ["search", *SPACE, *LONG, "--experiment", "exp", "--quiet"],
            ["trials", "--experiment", "exp"])]  # a reader never waits for the lock
        outs = [p.communicate(timeout=300) for p in others]
        assert runner.poll() is None, "the search ended before the other processes were refused"
    finally:
        runner.send_signal(signal.SIGINT)
        runner.communicate(timeout=60)
    for proc, (out, err) in zip(others[:2], outs[:2]):
        assert proc.returncode == 2, err + out
        assert f"nasforge search: error: experiment exp is being written by process {runner.pid} on " in err, err
    assert others[2].returncode == 0 and "exp: " in outs[2][0], outs[2]
    assert runner.returncode == 130
    used = len({r[0] for r in rows(workdir / "exp")})
    assert {**audit(workdir / "exp", used), "pending": 0} == CLEAN  # Ctrl+C leaves retries due, nothing else
    assert len({(r[0], r[1]) for r in rows(workdir / "exp")}) == len(rows(workdir / "exp"))


def test_the_lock_is_held_for_the_writers_life_and_released_by_its_death(tmp_path):
    """In-process holder, then a holder killed with -9: the kernel releases it, nothing is stale."""
    with ExperimentLock(tmp_path / "exp"):
        assert running_writer(tmp_path / "exp") is not None and str(os.getpid()) in running_writer(tmp_path / "exp")
        code = ("import sys; from nasforge.experiment_lock import ExperimentLock\n"
                "try:\n    ExperimentLock(sys.argv[1]).acquire()\n"
                "except Exception as e:\n    print(type(e).__name__, e); sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "exp")], capture_output=True, text=True)
        assert out.returncode == 3 and out.stdout.startswith("ExperimentLocked") and f"process {os.getpid()}" in out.stdout
    assert running_writer(tmp_path / "exp") is None
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nasforge.experiment_lock import "
                               "ExperimentLock; ExperimentLock(sys.argv[1]).acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(tmp_path / "exp")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert f"process {holder.pid}" in running_writer(tmp_path / "exp")
    holder.kill()
    holder.wait()
    assert running_writer(tmp_path / "exp") is None
    with ExperimentLock(tmp_path / "exp") as lock:  # taken at once after the holder's death
        assert lock.fd is not None


def test_a_write_interrupted_right_after_its_begin_neither_blocks_nor_leaks_into_the_next(tmp_path, monkeypatch):
    """A signal can raise between a write's BEGIN and its with-block, where __exit__ never runs:
    the transaction stays open. (CI saw it: SIGTERM there made the interrupted search's own
    clean-up fail with "cannot start a transaction within a transaction" and exit 2.) The next
    write must drop that unfinished transaction, not fail and not commit its half."""
    with Store(tmp_path / "s.sqlite") as store:
        store.set_meta("kept", "yes")
        begin = Store._Tx.__enter__

        def interrupted_after_begin(self):
            begin(self)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('half', 'written')")
            raise KeyboardInterrupt  # as the signal handler would, before the with-block starts
        monkeypatch.setattr(Store._Tx, "__enter__", interrupted_after_begin)
        with pytest.raises(KeyboardInterrupt):
            store.set_meta("lost", "never")
        monkeypatch.setattr(Store._Tx, "__enter__", begin)
        assert store.conn.in_transaction  # the state the signal leaves behind
        store.add_trial(0, [1], "h", 0, {})  # the clean-up's next write goes through
        assert store.get_meta("half") is None and store.get_meta("lost") is None
        assert store.get_meta("kept") == "yes"
    with Store(tmp_path / "s.sqlite") as again:  # and what it wrote is committed
        assert len(again.trials()) == 1 and again.get_meta("half") is None


def test_a_store_with_one_trial_twice_is_refused_by_the_unique_index(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_trial(0, [1], "h", 0, {})
        with pytest.raises(StoreError, match="already stored .*another process has written this experiment"):
            store.add_trial(0, [2], "h2", 0, {})
        assert len(store.trials()) == 1


def test_resume_with_a_budget_below_the_trials_used_is_refused(tmp_path):
    config = SearchConfig()
    config.update({"space": {"name": "nb201-cifar10"}, "strategy": {"name": "random"}, "budget": 14})
    run_search(config, tmp_path / "exp")
    config.budget = 5
    with pytest.raises(ConfigError, match=r"budget \(5\) is below the 14 trials .* at least 14"):
        run_search(config, tmp_path / "exp", resume=True)
    with Store(tmp_path / "exp" / "trials.sqlite", readonly=True) as store:
        assert store.config()["budget"] == 14 and len(store.trials()) == 14  # nothing rewritten


# ---- kill -9, disk full, signals --------------------------------------------------------------
def _stage(experiment: Path) -> str:
    if any(experiment.glob("trials.sqlite.new-*")) and not (experiment / "trials.sqlite").exists():
        return "creating"
    if not (experiment / "trials.sqlite").exists():
        return "before the store"
    try:
        n = len(rows(experiment))
    except sqlite3.Error:
        return "store without tables"
    return "store, no trial" if n == 0 else "trials"


@pytest.mark.slow
def test_kill_9_as_the_store_is_created_leaves_nothing_in_the_way(workdir):
    """Killed the moment its store is being built, or the moment the store file appears: no
    half-built file is left in the way; --resume continues it or says in a sentence why it cannot,
    and a fresh search then runs."""
    stages = []
    for i, appears in enumerate(["trials.sqlite.new-*", "trials.sqlite"]):
        experiment = workdir / f"e{i}"
        proc = start(["search", *SPACE, "--budget", "30", "--experiment", experiment.name, "--quiet"], workdir)
        wait_until(lambda: experiment.exists() and any(experiment.glob(appears)), proc, poll=0.001)
        proc.kill()
        proc.wait()
        stages.append(_stage(experiment))
        resumed = None
        if stages[-1] != "creating":  # with no store at all the CLI says so itself
            resumed = nasforge(["search", "--resume", "--experiment", experiment.name, "--quiet"], workdir)
            assert "Traceback" not in resumed.stderr, resumed.stderr
            assert resumed.returncode == 0 or (  # 0: the settings were stored before the kill
                resumed.returncode == 2 and "holds no search settings" in resumed.stderr), resumed.stderr
        if resumed is None or resumed.returncode != 0:
            again = nasforge(["search", *SPACE, "--budget", "30", "--experiment", experiment.name, "--quiet"],
                             workdir)
            assert again.returncode == 0, (stages[-1], again.stderr)
        assert audit(experiment, 30) == CLEAN
        assert not list(experiment.glob("trials.sqlite.new-*"))  # no half-built store stays behind
    print("kill -9 at store creation, stages hit:", stages)
    assert stages[0] == "creating", stages  # the 1 ms poll caught the partial store at least once


@pytest.mark.slow
def test_kill_9_at_twenty_random_points_loses_and_repeats_nothing(workdir, tmp_path):
    """One search killed 20 times at random moments, resumed each time: every budget slot once,
    nothing RUNNING, and the trials those of an uninterrupted run."""
    budget, rng, experiment = 2000, random.Random(14), workdir / "exp"
    points, stages = 0, []
    while points < 20:
        resume = experiment.exists() and (experiment / "trials.sqlite").exists() and _stage(experiment) == "trials"
        args = ["search", *SPACE, "--budget", str(budget), "--experiment", "exp", "--quiet"] + \
            (["--resume"] if resume else [])
        proc = start(args, workdir)
        before = completed(experiment)
        target = before + rng.randint(1, 10)
        try:
            wait_until(lambda: completed(experiment) >= target, proc)
        except AssertionError:
            break  # it finished first
        time.sleep(rng.uniform(0, 0.03))
        proc.kill()
        proc.wait()
        points += 1
        stages.append(completed(experiment))
    assert points == 20, f"only {points} kill points before the search finished"
    final = nasforge(["search", "--resume", "--experiment", "exp", "--budget", str(budget), "--quiet"], workdir,
                     timeout=600)
    assert final.returncode == 0, final.stderr
    assert audit(experiment, budget) == CLEAN
    retried = sum(r[1] > 0 for r in rows(experiment))
    print(f"kill -9 at {points} points (completed trials then: {stages}); {retried} trials cut short and retried")
    reference = tmp_path / "reference"
    config = SearchConfig()
    config.update({"space": {"name": "nb201-cifar10"}, "budget": budget})
    run_search(config, reference)
    con_a = sqlite3.connect(experiment / "trials.sqlite")
    con_b = sqlite3.connect(reference / "trials.sqlite")
    query = "SELECT number, tokens, objective FROM trials WHERE state = 'COMPLETE' ORDER BY number"
    assert con_a.execute(query).fetchall() == con_b.execute(query).fetchall()
    con_a.close()
    con_b.close()


def test_disk_full_is_a_sentence_and_the_store_resumes(workdir):
    out = nasforge(["search", *SPACE, "--budget", "300", "--experiment", "exp", "--quiet"], workdir,
                   shell_prefix="ulimit -f 2048")
    assert out.returncode == 2, out.stderr + out.stdout
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert "nasforge search: error: could not write exp/trials.sqlite" in out.stderr, out.stderr
    assert "(the disk is full, over a file size limit, or failing)" in out.stderr, out.stderr
    assert "continue with --resume" in out.stderr
    done = completed(workdir / "exp")
    assert 0 < done < 300
    con = sqlite3.connect(workdir / "exp" / "trials.sqlite")
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    con.close()
    budget = len({r[0] for r in rows(workdir / "exp")}) + 20  # enough to write on past the failure
    again = nasforge(["search", "--resume", "--experiment", "exp", "--budget", str(budget), "--quiet"], workdir)
    assert again.returncode == 0, again.stderr
    assert audit(workdir / "exp", budget) == CLEAN


@pytest.mark.parametrize("sig,code,said,recorded", [
    (signal.SIGINT, 130, "stopped.", "interrupted by the user (Ctrl+C)"),
    (signal.SIGTERM, 143, "stopped (SIGTERM).", "interrupted: the search received SIGTERM"),
])
def test_sigint_and_sigterm_stop_cleanly_and_resume(workdir, sig, code, said, recorded):
    proc = start(["search", *SPACE, *LONG, "--experiment", "exp", "--quiet"], workdir)
    wait_until(lambda: completed(workdir / "exp") >= 20, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert said in out and "continue with `nasforge search --resume --experiment exp`" in out, out
    assert "Traceback" not in err
    stored = rows(workdir / "exp")
    assert not [r for r in stored if r[2] == "RUNNING"]
    con = sqlite3.connect(workdir / "exp" / "trials.sqlite")
    errors = {e for (e,) in con.execute("SELECT error FROM trials WHERE needs_retry = 1")}
    con.close()
    assert errors <= {recorded}
    assert running_writer(workdir / "exp") is None  # the lock went with the process
    used = len({r[0] for r in stored})
    again = nasforge(["search", "--resume", "--experiment", "exp", "--budget", str(used + 5), "--quiet"], workdir)
    assert again.returncode == 0, again.stderr
    assert audit(workdir / "exp", used + 5) == CLEAN
