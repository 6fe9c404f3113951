"""The README's Python API example, run the way a user runs it: saved as a script with no
``if __name__ == "__main__"`` guard, and fed to the interpreter as a notebook would (no file).

Workers of the local executor used to be multiprocessing spawn children, which re-run the user's
main script: the example started a search inside each worker and failed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
