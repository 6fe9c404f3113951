"""Running the real ``nasforge`` command the way a user does, for the end-to-end tests
(test_user_paths.py, test_readme.py): a subprocess of this interpreter, ``python -m nasforge``,
in the user's own folder, with the user's environment (less the debugging switch).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose code the commands run

#: Environment variables that change what a user would see: removed for every run.
_NOT_A_USERS = ("NASFORGE_DEBUG",)


def user_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_A_USERS}
    # The tree these tests live in comes first: an installed nasforge (another checkout's editable
    # install) must not answer for it. ``python(..., isolated=True)`` ignores it, as it should.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    # A local Ray instance's dashboard asks the cloud metadata service where it runs, whatever its
    # settings (see tests/conftest.py: ray_offline): through a closed loopback proxy those requests
    # fail at once, so the tests reach nothing beyond loopback. nasforge itself never downloads.
    env.update({name: "http://127.0.0.1:9" for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")})
    env.update({name: "127.0.0.1,localhost,::1" for name in ("no_proxy", "NO_PROXY")})
    env.update(extra or {})
    return env


def nasforge(args: Sequence[str], cwd: Path, timeout: float = 280,
             env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``nasforge ARGS`` in ``cwd``; never raises on a non-zero exit (the tests assert on it)."""
    return subprocess.run([sys.executable, "-m", "nasforge", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=user_env(env))


def python(args: Sequence[str], cwd: Path, timeout: float = 280, isolated: bool = False,
           env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``python ARGS`` in ``cwd`` (``-I``: isolated from PYTHONPATH, the user site and the script's folder)."""
    flags = ["-I"] if isolated else []
    return subprocess.run([sys.executable, *flags, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=user_env(env))


def shown(run: subprocess.CompletedProcess, limit: int = 2500) -> str:
    """What a failed assertion should show: the command, its exit status and the tail of its output."""
    cmd = " ".join(str(a) for a in run.args[1:]) if isinstance(run.args, (list, tuple)) else str(run.args)
    out = (run.stdout or "")[-limit:]
    err = (run.stderr or "")[-limit:]
    return f"\n$ {cmd}\nexit status {run.returncode}\n--- stdout (tail) ---\n{out}\n--- stderr (tail) ---\n{err}"


def error_line(run: subprocess.CompletedProcess) -> str:
    """The one line a user reads on failure: ``nasforge X: error: ...``, else the last line of stderr."""
    lines = [l for l in (run.stderr or "").splitlines() if l.strip()]
    for line in lines:
        if re.match(r"nasforge \w+: error:", line):
            return line.strip()
    return lines[-1].strip() if lines else f"exit status {run.returncode}, nothing on stderr"


def ok(run: subprocess.CompletedProcess) -> None:
    """Assert exit status 0, showing the user's error line first."""
    assert run.returncode == 0, f"{error_line(run)}{shown(run)}"


def json_out(run: subprocess.CompletedProcess) -> Any:
    ok(run)
    try:
        return json.loads(run.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"--json output is not JSON ({exc}){shown(run)}") from None


def completed_trials(experiment: Path) -> int:
    """How many trials of ``experiment`` have completed, read as a second process would (0 before
    its store exists): for tests that stop a command once it has done some work."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{experiment / 'trials.sqlite'}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def refused(run: subprocess.CompletedProcess, command: str, *said: str) -> str:
    """Exit 2 with one ``nasforge COMMAND: error:`` line that says each of ``said``; no traceback."""
    line = error_line(run)
    assert run.returncode == 2, shown(run)
    assert line.startswith(f"nasforge {command}: error: "), shown(run)
    for text in said:
        assert text in line, f"{text!r} not in {line!r}{shown(run)}"
    assert "Traceback" not in run.stderr, shown(run)
    return line
