"""The README's Python API example, run the way a user runs it: saved as a script with no
``if __name__ == "__main__"`` guard, and fed to the interpreter as a notebook would (no file).

Workers of the local executor used to be multiprocessing spawn children, which re-run the user's
main script: the example started a search inside each worker and failed. And the failed start
left an empty experiment folder behind that the next run silently reused.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nasforge import SearchConfig, run_search
from nasforge.execution.local import WorkerSetupError
from nasforge.search import store_path

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_CALL = re.compile(r"SearchConfig\([^)]*\)")


def readme_example(dataset: str) -> str:
    """The README's Python API block, as written, with only the SearchConfig(...) call made tiny."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"\*\*Python API\*\*.*?```python\n(.*?)```", text, re.S)
    assert block, "README.md has no Python API example"
    code = block.group(1)
    assert len(EXAMPLE_CALL.findall(code)) == 1, code
    tiny = (f"SearchConfig(dataset={dataset!r}, budget=2, seed=0, training={{'epochs': 1}}, "
            "execution={'name': 'local', 'workers': 1})")
    assert "__main__" not in code  # the point: the example has no guard
    return EXAMPLE_CALL.sub(lambda _: tiny, code)


def _run(args, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_the_readme_api_example_runs_as_written(tmp_path, mnist1d_npz, how):
    code = readme_example(mnist1d_npz)
    if how == "script":
        (tmp_path / "example.py").write_text(code, encoding="utf-8")
        done = _run(["example.py"], tmp_path)
    else:  # a notebook or `python -c`: the main module has no file
        done = _run(["-"], tmp_path, stdin=code)
    assert done.returncode == 0, done.stderr[-3000:]
    objective, tokens = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert 0.0 <= float(objective) <= 1.0 and tokens.startswith("[")
    assert store_path(tmp_path / "runs" / "api-example").is_file()


FAILS_IN_WORKERS = textwrap.dedent("""\
    # Loads in the driver, refuses to load in any other process: a worker that cannot start.
    import os
    if os.environ.get("NASFORGE_TEST_DRIVER_PID") != str(os.getpid()):
        raise RuntimeError("this plugin refuses to load in a worker")
""")


def _failing_start_config(tmp_path, monkeypatch, mnist1d_npz) -> SearchConfig:
    (tmp_path / "fails_in_workers.py").write_text(FAILS_IN_WORKERS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # workers get the driver's sys.path
    monkeypatch.setenv("NASFORGE_TEST_DRIVER_PID", str(os.getpid()))
    config = SearchConfig(dataset=mnist1d_npz, budget=2, seed=0, training={"epochs": 1},
                          execution={"name": "local", "workers": 1})
    config.plugins = ["fails_in_workers"]
    return config


def test_a_failed_start_leaves_no_experiment_behind(tmp_path, monkeypatch, mnist1d_npz):
    config = _failing_start_config(tmp_path, monkeypatch, mnist1d_npz)
    experiment = tmp_path / "runs" / "failed"
    with pytest.raises(WorkerSetupError, match="refuses to load in a worker"):
        run_search(config, experiment)
    assert not experiment.exists()
    assert (tmp_path / "runs").is_dir()  # only what the run created is removed


def test_a_failed_start_in_a_folder_the_user_made_keeps_the_folder_not_the_store(tmp_path, monkeypatch,
                                                                                   mnist1d_npz):
    config = _failing_start_config(tmp_path, monkeypatch, mnist1d_npz)
    experiment = tmp_path / "mine"
    experiment.mkdir()
    (experiment / "notes.txt").write_text("the user's", encoding="utf-8")
    with pytest.raises(WorkerSetupError):
        run_search(config, experiment)
    assert (experiment / "notes.txt").read_text(encoding="utf-8") == "the user's"
    assert not [p.name for p in experiment.iterdir() if p.name.startswith("trials.sqlite")]
