"""The comparison plot of ``nasforge benchmark`` (issue 18, item 5): colour-blind-safe colours and a
dash per strategy, settings in the legend, a validation panel under each test panel; and the same
comparison in the HTML report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nasforge.compare import curves, report


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    done = subprocess.run([sys.executable, "-m", "nasforge", "benchmark", "--workers", "1", "--out", str(out),
                           "--benchmarks", "mnist1d-chain", "--strategies", "random,reinforce,tpe", "--seeds", "2",
                           "--budget", "15", "--set", "reinforce.learning_rate=0.05"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    assert done.returncode == 1, done.stdout + done.stderr  # tpe answers nothing on this table
    return out


def test_plot_tells_strategies_and_their_settings_apart(bench):
    fig = curves.curve_figure(report.load_result(bench / "runs.json"))
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels[:2] == ["random", "reinforce (batch_size=4, entropy_weight=0.003, learning_rate=0.05)"]
    assert not any(label.startswith("tpe") for label in labels)  # no line, so no legend entry
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.axison]
    assert titles == ["mnist1d-chain: test", "mnist1d-chain: validation"]
    test_ax, val_ax = [ax for ax in fig.axes if ax.axison]
    assert val_ax.get_ylabel() == "validation regret (points)"
    strategies = [line for line in test_ax.get_lines() if not line.get_label().startswith("oracle")]
    assert [line.get_color() for line in strategies] == list(curves.PALETTE[:2])
    assert [line.get_linestyle() for line in strategies] == ["-", "--"]
    for ax in (test_ax, val_ax):  # failures are said in every panel of the benchmark
        assert "tpe: 30 of 30 queries failed, no line" in " ".join(t.get_text() for t in ax.texts)
    # validation regret: the table's best validation accuracy minus the best found, never negative
    val = [line for line in val_ax.get_lines()][0].get_ydata()
    assert min(val) >= 0


def test_benchmark_view_for_the_report(bench, tmp_path, capsys):
    from nasforge.report.benchmark_view import benchmark_data

    data = benchmark_data(bench)
    assert [p["title"] for p in data["panels"]] == ["mnist1d-chain: test regret", "mnist1d-chain: validation regret"]
    for panel in data["panels"]:
        assert [c["label"].split(" ")[0] for c in panel["curves"]] == ["random", "reinforce", "tpe"]
        assert panel["failed"] == ["tpe (30 of 30 queries)"]
        assert panel["curves"][2]["x"] == []  # tpe: no curve
        random = panel["curves"][0]
        assert len(random["x"]) == 15 and all(lo <= m <= hi for lo, m, hi in
                                              zip(random["low"], random["mean"], random["high"]))
    json.dumps(data, allow_nan=False)
    with pytest.raises(ValueError, match="no runs.json there"):
        benchmark_data(tmp_path)


def test_report_of_a_comparison_alone(bench, tmp_path, monkeypatch, capsys):
    import base64
    import gzip
    import re

    from nasforge.cli.main import main

    monkeypatch.chdir(tmp_path)  # no runs/latest here: the report holds the comparison only
    out = tmp_path / "b.html"
    assert main(["report", "--benchmark", str(bench), "--out", str(out)]) == 0
    assert "0 trials, a benchmark comparison" in capsys.readouterr().out.replace("\n", "")
    payload = re.search(r'id="data-gz" type="application/octet-stream">([^<]+)<', out.read_text()).group(1)
    data = json.loads(gzip.decompress(base64.b64decode(payload)))
    assert data["experiments"] == [] and len(data["benchmark"]["panels"]) == 2
    assert main(["report", "--benchmark", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no runs.json there" in capsys.readouterr().err
