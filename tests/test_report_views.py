"""The dashboard's and report's views, computed from real (tabular, seconds-long) searches, and the
commands' answers to bad input: a clear message and exit status 2, never a traceback."""

from __future__ import annotations

import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from nasforge import SearchConfig, run_search
from nasforge.cli.main import main
from nasforge.report import views
from nasforge.report.archdraw import chain_layers, draw
from nasforge.report.importance import importance
from nasforge.spaces.chain_cnn import ChainCNNSpace

def _search(folder: Path, strategy: dict, budget: int = 16) -> Path:
    config = SearchConfig(budget=budget, seed=1)
    config.space = {"name": "mnist1d-chain"}
    config.strategy = strategy
    run_search(config, folder)
    return folder


@pytest.fixture(scope="module")
def reinforce_run(tmp_path_factory) -> Path:
    return _search(tmp_path_factory.mktemp("views") / "rl", {"name": "reinforce", "batch_size": 4,
                                                             "learning_rate": 0.05})


@pytest.fixture(scope="module")
def evolution_run(tmp_path_factory) -> Path:
    return _search(tmp_path_factory.mktemp("views") / "evo", {"name": "evolution", "population_size": 5,
                                                              "sample_size": 2}, budget=12)


def test_views_of_a_reinforce_search(reinforce_run):
    data = views.experiment_data(reinforce_run)
    assert data["counts"]["COMPLETE"] == 16 and len(data["trials"]) == 16
    assert data["settings"]["metric"] == "val_acc" and data["settings"]["direction"] == "maximize"
    objectives = [t["objective"] for t in data["trials"]]
    assert data["best_so_far"] == [max(objectives[:k + 1]) for k in range(16)]
    # the policy: one entry per controller update (16 trials, m = 4: 4 updates), each decision's
    # choice frequencies a distribution; a learning rate of 0.05 moves it away from the first one
    learning = data["learning"]
    assert learning["kind"] == "policy"
    assert [u["update"] for u in learning["updates"]] == [1, 2, 3, 4]
    assert [u["trial"] for u in learning["updates"]] == [3, 7, 11, 15]
    for u in learning["updates"]:
        assert len(u["probabilities"]) == 25
        assert all(abs(sum(p) - 1) < 1e-9 for p in u["probabilities"])
        assert u["entropy"] > 0 and u["baseline"] is not None
    first, last = learning["updates"][0]["probabilities"], learning["updates"][-1]["probabilities"]
    assert max(abs(a - b) for pa, pb in zip(first, last) for a, b in zip(pa, pb)) > 0.02
    # importance: every decision once, shares summing to 1
    imp = data["importance"]
    assert sorted(imp["decisions"]) == sorted(d.name for d in ChainCNNSpace(num_layers=4).decisions)
    assert abs(sum(imp["values"]) - 1) < 1e-6 and imp["trials"] == 16
    # Pareto: val_acc against params is there, its front is non-dominated
    pair = data["pareto"]["pairs"]["val_acc|params"]
    by_number = {t["number"]: t for t in data["trials"]}
    for n in pair["front"]:
        a = by_number[n]
        assert not any(t["objective"] >= a["objective"] and t["metrics"]["params"] <= a["metrics"]["params"]
                       and (t["objective"], t["metrics"]["params"]) != (a["objective"], a["metrics"]["params"])
                       for t in data["trials"])
    hv = [v for _, v in pair["hv"]]
    assert hv == sorted(hv) and hv[-1] > 0  # the hypervolume of a growing set never shrinks
    assert set(data["drawings"]) == {t["arch"] for t in data["trials"]}
    json.dumps(data, allow_nan=False)  # what the page receives


def test_population_view_replays_aging_evolution(evolution_run):
    data = views.experiment_data(evolution_run)
    series = data["learning"]["series"]
    assert data["learning"]["kind"] == "population" and data["learning"]["population_size"] == 5
    assert [p["mean_age"] for p in series[:6]] == [0, 0.5, 1, 1.5, 2, 2]  # ages 0..4 once full
    assert all(1 <= p["distinct"] <= 5 and 0 <= p["diversity"] <= 1 for p in series)


def test_twins_under_the_hash_each_show_their_own_summary():
    """One update rule written two ways shares a hash (one drawing), but each trial's row shows
    the rule as that trial wrote it."""
    from nasforge.spaces.update_rules import UpdateRuleSpace
    from nasforge.store.records import TrialRecord

    space = UpdateRuleSpace()
    written = [space.tokens_for([("sign(g)", "1", "identity", "identity", "keep_left")], 0.03),
               space.tokens_for([("g^3", "1", "sign", "identity", "power")], 0.03)]
    assert space.arch_hash(written[0]) == space.arch_hash(written[1])
    trials = [TrialRecord(i, i, 0, "COMPLETE", list(t), space.arch_hash(t), i, {}, {"val_acc": 0.5}, 0.5, 0.5,
                          None, False, 1.0 + i, 2.0 + i) for i, t in enumerate(written)]
    rows, _ = views.trial_rows(trials, space, 0.0, 10.0)
    assert [r["summary"] for r in rows] == ["0.03 * sign(g)", "0.03 * power(sign(g^3), 1)"]
    assert rows[0]["arch"] == rows[1]["arch"]


def test_importance_says_why_it_is_missing():
    rows = [{"state": "COMPLETE", "objective": 0.5, "tokens": [0, 1]} for _ in range(3)]
    assert "needs at least 8 completed trials (3 so far)" in importance(ChainCNNSpace(1), rows)["reason"]
    same = [{"state": "COMPLETE", "objective": 0.5, "tokens": [k % 2, 1]} for k in range(10)]
    assert "same objective" in importance(ChainCNNSpace(1), same)["reason"]


def test_chain_drawing_shows_layers_skips_and_head():
    space = ChainCNNSpace(num_layers=3)
    values = {"L0.op": "conv", "L0.kernel": 5, "L0.filters": 36, "L0.stride": 2,
              "L1.from_L0": 0, "L1.op": "maxpool", "L1.kernel": 3, "L1.filters": 24, "L1.stride": 1,
              "L2.from_L0": 1, "L2.from_L1": 0, "L2.op": "identity", "L2.kernel": 1, "L2.filters": 24,
              "L2.stride": 1, "readout": "avg", "head.depth": 2, "head.width": 128}
    tokens = space.decode(values)
    arch = chain_layers(space, tokens)
    assert [layer["inputs"] for layer in arch["layers"]] == [[], [], [0]]
    assert arch["to_readout"] == [1, 2]  # L1 is read by no later layer; L2 is the last
    svg = draw(space, tokens)
    for text in ("L0: conv 5, 36 filters, stride 2", "L1: maxpool 3", "L2: identity", "readout: global average pool",
                 "fc 128 + ReLU", "fc to classes", "skip: input feeds L1", "skip: L0 feeds L2",
                 "L1 is read by no later layer"):
        assert text in svg, text
    assert svg.count("fc 128 + ReLU") == 2


# ---- nasforge report ------------------------------------------------------------------------------


def test_report_is_one_self_contained_file(reinforce_run, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "--experiment", str(reinforce_run), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert re.search(r"wrote .*r\.html \(\d+\.\d\d MB, 16 trials", said.replace("\n", ""))
    html = out.read_text()
    assert "<script src=" not in html and "http://" not in html.split('id="plotly-gz"')[0]
    assert out.stat().st_size < 5e6
    payload = re.search(r'<script id="data-gz" type="application/octet-stream">([^<]+)</script>', html).group(1)
    import base64
    import gzip

    data = json.loads(gzip.decompress(base64.b64decode(payload)))
    assert len(data["experiments"][0]["trials"]) == 16



def _report_data(html: str) -> dict:
    import base64
    import gzip

    payload = re.search(r'<script id="data-gz" type="application/octet-stream">([^<]+)</script>', html).group(1)
    return json.loads(gzip.decompress(base64.b64decode(payload)))


def test_report_in_a_fresh_process_computes_importance_and_policy_beside_it(reinforce_run, tmp_path):
    """The command as a user runs it (torch not yet imported, so the forest and the policy are
    computed in forked processes): the same views as computed here in one process."""
    out = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "nasforge", "report", "--experiment", str(reinforce_run),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    reported = _report_data(out.read_text())["experiments"][0]
    here = json.loads(json.dumps(views.experiment_data(reinforce_run)))
    assert reported["importance"] == here["importance"]
    assert reported["learning"] == here["learning"] and reported["learning"]["kind"] == "policy"
    assert reported["importance"]["trials"] == 16
    assert len(reported["importance"]["decisions"]) == len(reported["importance"]["values"])


BACKGROUND_SCRIPT = """\
import sys, time
from pathlib import Path
from nasforge.report.background import InBackground
from nasforge.report.importance import importance
from nasforge.report.views import open_readonly, _settings_and_space, trial_rows
bg = InBackground()
assert set(bg.pools) == {"importance", "learning"}, bg.pools
store = open_readonly(Path(sys.argv[1]))
config, space = _settings_and_space(store, None)
rows = trial_rows(store.trials(), space, 0.0, time.time())[0]
imp, learn = bg.importance(space, rows), bg.learning(Path(sys.argv[1]), store, config, space, rows)
got = (imp(), learn())
children = [p.pid for pool in bg.pools.values() for p in pool._processes.values()]
# reading the store, the space and the rows imported no torch here: only the workers did
assert "torch" not in sys.modules, "the report's own process imported torch"
bg.close()
print(repr(got[0] == importance(space, rows)), len(got[1]["updates"]), *children)
"""


def test_importance_and_policy_in_background_fork_and_agree(reinforce_run):
    done = subprocess.run([sys.executable, "-c", BACKGROUND_SCRIPT, str(reinforce_run)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    same, updates, *children = done.stdout.split()
    assert same == "True" and int(updates) == 4 and len(children) == 2
    for pid in children:  # closed: no worker is left behind
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def _fails(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_report_bad_input(tmp_path, capsys):
    assert "no experiment folder" in _fails(["report", "--experiment", str(tmp_path / "nope")], capsys)
    (tmp_path / "empty").mkdir()
    assert "holds no store yet" in _fails(["report", "--experiment", str(tmp_path / "empty")], capsys)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "trials.sqlite").write_bytes(b"this is not a database" * 100)
    assert "is not a nasforge store, or its header is damaged" in _fails(
        ["report", "--experiment", str(corrupt)], capsys)


def test_report_of_an_experiment_with_no_trials(tmp_path, capsys):
    from nasforge.store import Store

    folder = tmp_path / "fresh"
    with Store(folder / "trials.sqlite") as store:
        store.set_config({"space": {"name": "mnist1d-chain"}, "strategy": {"name": "random"}, "budget": 5})
    err = _fails(["report", "--experiment", str(folder)], capsys)
    assert f"nothing to report: experiment {folder} has no trials yet" in err


def test_report_refuses_a_folder_as_out(reinforce_run, tmp_path, capsys):
    assert "is a folder" in _fails(["report", "--experiment", str(reinforce_run), "--out", str(tmp_path)], capsys)


# ---- nasforge dashboard ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_port_in_use(reinforce_run, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        err = _fails(["dashboard", "--experiment", str(reinforce_run), "--port", str(port)], capsys)
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port 0" in err


@pytest.mark.parametrize("port", ["99999", "-5"])
def test_dashboard_port_out_of_range_is_named(reinforce_run, capsys, port):
    err = _fails(["dashboard", "--experiment", str(reinforce_run), "--port", port], capsys)  # was a traceback
    assert f"--port must be 0 to 65535 (0: any free port), got {port}" in err


def test_dashboard_serves_loopback_reads_only_and_follows_a_writer(tmp_path):
    from nasforge.report.dashboard import make_server

    folder = _search(tmp_path / "live", {"name": "random"}, budget=4)
    server = make_server([folder, tmp_path / "not-yet"], port=0, heavy_every=0.0)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        page = urllib.request.urlopen(base).read().decode()
        assert '<script src="plotly.min.js">' in page and '"mode":"live"' in page
        assert len(urllib.request.urlopen(base + "plotly.min.js").read()) > 1_000_000
        v1 = urllib.request.urlopen(base + "api/version").read()
        data = json.loads(urllib.request.urlopen(base + "api/data").read())
        assert [len(e.get("trials", [])) for e in data["experiments"]] == [4, 0]
        assert "learning" not in data["experiments"][0] and "pareto" not in data["experiments"][0]  # quick first
        urllib.request.urlopen(base + "api/version")
        data = json.loads(urllib.request.urlopen(base + "api/data").read())
        assert data["experiments"][0]["learning"] is None and "importance" in data["experiments"][0]
        assert "holds no store yet" in data["experiments"][1]["error"] or "no experiment folder" in \
            data["experiments"][1]["error"]
        # a writer continues the search while the dashboard is open: it is never refused or kept
        # waiting (no lock held), and the next version and data show the new trials
        config = SearchConfig(budget=7, seed=1)
        config.space = {"name": "mnist1d-chain"}
        config.strategy = {"name": "random"}
        run_search(config, folder, resume=True)
        assert urllib.request.urlopen(base + "api/version").read() != v1
        data = json.loads(urllib.request.urlopen(base + "api/data").read())
        assert len(data["experiments"][0]["trials"]) == 7
        # drawings come one at a time, not with the data (they are most of its bytes)
        assert "drawings" not in data["experiments"][0]
        arch = data["experiments"][0]["trials"][0]["arch"]
        drawn = json.loads(urllib.request.urlopen(f"{base}api/drawing?e=0&arch={arch}").read())
        assert drawn["svg"].startswith("<svg") and drawn["lines"][0].startswith("L0:")
        for missing_url in ("nothing-here", "api/drawing?e=0&arch=nope", "api/drawing?e=9&arch=" + arch):
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(base + missing_url)
            assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_dashboard_command_starts_and_says_where(reinforce_run, tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", "dashboard", "--experiment", str(reinforce_run),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"nasforge dashboard: http://127.0.0.1:{port}/" in line
        body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/data", timeout=180).read())
        assert len(body["experiments"][0]["trials"]) == 16
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_report_of_a_store_being_written(tmp_path, capsys):
    """A writer holding its transaction open (a search between two commits) neither blocks the
    report nor leaks into it; a trial stored as RUNNING is shown as running, and said."""
    folder = _search(tmp_path / "busy", {"name": "random"}, budget=5)
    writer = sqlite3.connect(folder / "trials.sqlite", isolation_level=None)
    try:
        writer.execute("UPDATE trials SET state = 'RUNNING', finished = NULL WHERE number = 4")
        writer.execute("BEGIN IMMEDIATE")  # the write lock, held while the report runs
        writer.execute("DELETE FROM trials")  # uncommitted: a reader never sees it
        out = tmp_path / "busy.html"
        assert main(["report", "--experiment", str(folder), "--out", str(out)]) == 0
        said = capsys.readouterr().out.replace("\n", "")
        assert "5 trials" in said and "1 trial(s) were still running" in said
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_report_of_a_store_whose_creation_was_cut_short(tmp_path, capsys):
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "trials.sqlite").write_bytes(b"")
    err = _fails(["report", "--experiment", str(tmp_path / "cut")], capsys)
    assert "holds no experiment: its creation was cut short" in err


def test_a_view_that_cannot_be_computed_says_why_and_the_rest_shows(reinforce_run, tmp_path):
    """A stored controller state whose part was damaged: the policy view names the problem, the
    trials and the other views are still there."""
    folder = tmp_path / "damaged"
    shutil.copytree(reinforce_run, folder)
    with sqlite3.connect(folder / "trials.sqlite") as db:
        db.execute("UPDATE blobs SET data = X'00'")
    data = views.experiment_data(folder)
    assert data["learning"]["kind"] == "error"
    assert "missing or damaged part" in data["learning"]["reason"]
    assert len(data["trials"]) == 16 and data["importance"]["trials"] == 16


def test_final_view_shows_retrain_selection_and_export(reinforce_run, tmp_path):
    from nasforge.store import Store

    folder = tmp_path / "final"
    shutil.copytree(reinforce_run, folder)
    with Store(folder / "trials.sqlite") as store:
        trial = store.best(1)[0]
        store.add_evaluation(trial.id, "rerank", {"val_acc": 0.91, "note": "final recipe"})
        store.add_evaluation(trial.id, "final-choice", {"rerank": 3})
        store.add_evaluation(trial.id, "retrain", {"test_acc": 0.95, "seed": 0, "history": [1, 2]})
    (folder / "export").mkdir()
    (folder / "export" / "model.onnx").write_bytes(b"x" * 123)
    final = views.experiment_data(folder, heavy=False)["final"]
    assert [(e["kind"], e["trial"]) for e in final["evaluations"]] == [
        ("rerank", trial.number), ("final-choice", trial.number), ("retrain", trial.number)]
    assert final["evaluations"][2]["metrics"] == {"test_acc": 0.95, "seed": 0}  # lists left out
    assert final["evaluations"][0]["notes"] == {"note": "final recipe"}
    assert final["export"] == [{"path": "export/model.onnx", "bytes": 123}]
