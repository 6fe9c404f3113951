"""The README's plugin example ("Your own search space, strategy or estimator"), so that it cannot
rot: the files it shows are examples/my_plugin's, as they are, and its commands run, as written, in
a copy of that folder through the real ``nasforge`` command (shrunk by appended flags)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from cli_paths import ROOT, nasforge, ok, shown, user_env
from test_readme import EXAMPLE_FILE, blocks

FOLDER = "examples/my_plugin"

#: Appended to a command (argparse keeps the last value), and what its output must show, by the
#: command's first words. The README's 20 children of 4 epochs take minutes; 2 of 1 walk the same code.
SHRINK: Dict[str, Tuple[List[str], str]] = {
    "search --config": (["--budget", "2", "--epochs", "1"], r"\b2 completed\b"),
    "search --resume": (["--budget", "3"], r"\b3 completed\b"),
    "trials": ([], r"COMPLETE[\s\S]*COMPLETE"),
    "best": ([], r"depth = \d"),
    "pareto": ([], r"fc\d+ (relu|tanh)"),  # the space's own summary, not raw tokens
    "report": ([], r"wrote \S*report\.html"),
}


def test_the_readme_shows_the_example_files_as_they_are():
    shown_files = {}
    for lang in ("python", "toml"):
        for block in blocks(lang, examples=True):
            path = EXAMPLE_FILE.match(block).group(1)
            shown_files[path] = block[EXAMPLE_FILE.match(block).end():]
    assert sorted(shown_files) == [f"{FOLDER}/my_space.py", f"{FOLDER}/search.toml"]
    for path, text in shown_files.items():
        assert text == (ROOT / path).read_text(), f"README's {path} differs from the file"


def _example_commands() -> List[List[str]]:
    """The README's bash block that starts in the example's folder, one token list per line."""
    for block in blocks("bash"):
        lines = [shlex.split(line, comments=True) for line in block.splitlines()]
        lines = [tokens for tokens in lines if tokens]
        if lines and lines[0] == ["cd", FOLDER]:
            return lines[1:]
    raise AssertionError(f"README has no bash block starting with `cd {FOLDER}`")


@pytest.mark.timeout(600)
def test_the_readme_commands_run_on_the_example(tmp_path):
    folder = tmp_path / "my_plugin"
    shutil.copytree(ROOT / FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    commands = _example_commands()
    assert [" ".join(t[:3]) for t in commands][:1] == ["PYTHONPATH=. nasforge search"], commands
    for tokens in commands:
        env = dict(t.split("=", 1) for t in tokens[:tokens.index("nasforge")])
        args = tokens[tokens.index("nasforge") + 1:]
        assert env == {"PYTHONPATH": "."}, tokens
        extra, expect = next(v for k, v in SHRINK.items() if " ".join(args).startswith(k))
        # this checkout's nasforge first (as every test runs it), then the README's own PYTHONPATH
        run = nasforge([*args, *extra], cwd=folder, env={"PYTHONPATH": f"{user_env()['PYTHONPATH']}:."})
        ok(run)
        assert re.search(expect, run.stdout), f"output should match {expect!r}{shown(run)}"
