"""``nasforge pareto`` as a user runs it after a search: plain (the search's last line suggests
it), and with ``--plot`` naming the file as a user would."""

from __future__ import annotations

from cli_paths import error_line, nasforge, ok


def _search(tmp_path, space, name):
    run = nasforge(["search", "--space", space, "--strategy", "random", "--budget", "12", "--experiment", name,
                    "--quiet"], cwd=tmp_path)
    ok(run)
    return run


def test_plain_pareto_weighs_a_cost_the_trials_report_or_says_which_to_name(tmp_path):
    assert "`nasforge pareto` read the results" in _search(tmp_path, "nbgraph-cora", "g").stdout
    run = nasforge(["pareto", "--experiment", "g"], cwd=tmp_path)
    ok(run)
    assert "params" in run.stdout and "hypervolume" in run.stdout
    # NAS-Bench-201 stores no parameter count, and its training cost is one constant
    searched = _search(tmp_path, "nb201-cifar10", "n")
    plain = nasforge(["pareto", "--experiment", "n"], cwd=tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    message = error_line(plain)
    assert "no cost that varies" in message and "--metrics val_acc," in message, message
    suggested = message.rsplit("--metrics ", 1)[1].split()[0]
    ok(nasforge(["pareto", "--experiment", "n", "--metrics", suggested], cwd=tmp_path))  # the hint works
    assert f"`nasforge pareto --metrics {suggested}`" in searched.stdout  # and the search's last line gives it


def test_plot_is_written_where_it_says_and_bad_paths_are_refused_first(tmp_path):
    _search(tmp_path, "nbgraph-cora", "g")
    run = nasforge(["pareto", "--experiment", "g", "--plot", "front"], cwd=tmp_path)
    ok(run)
    assert "plot: front.png" in run.stdout and (tmp_path / "front.png").stat().st_size > 0
    ok(nasforge(["pareto", "--experiment", "g", "--plot", "new/folder/front.svg"], cwd=tmp_path))
    assert (tmp_path / "new" / "folder" / "front.svg").exists()
    for bad, message in (("g", "--plot g is a folder"), ("front.txt", "give a file ending in .png"),
                         ("/proc/x/front.png", "cannot write /proc/x/front.png")):
        refused = nasforge(["pareto", "--experiment", "g", "--plot", bad], cwd=tmp_path)
        assert refused.returncode == 2 and message in error_line(refused), error_line(refused)
        assert "Traceback" not in refused.stderr
