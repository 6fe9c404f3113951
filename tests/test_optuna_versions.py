"""The Optuna range pyproject.toml declares, tested at both ends (slow: it installs from PyPI).

The package declares a range so that installing nasforge as a library leaves the user's Optuna
alone; the set-up script pins one version. Each end of the range is installed into a temporary
``--target`` folder (with whatever it needs that this environment lacks) and the tests that touch
Optuna run in a subprocess with that folder first on PYTHONPATH. Results: docs/testing.md.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# every test file that names tpe or optuna, with the -k expression that picks its Optuna tests
# (None: the whole file); test_the_list_covers_every_optuna_test keeps this list complete
OPTUNA_TESTS = {
    "test_strategies_contract.py": "tpe",
    "test_strategies_quality.py": "tpe",
    "test_benchmark_cli_failures.py": "every_query_fails or only_failing",
    "test_benchmark_plot.py": None,
    "test_benchmarking.py": "runs_the_search_strategies",
    "test_pareto.py": "optuna",  # our fronts and hypervolume checked against Optuna's (private) functions
}


def declared_optuna() -> Requirement:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d) for d in deps if Requirement(d).name == "optuna")


def lowest_supported() -> str:
    lows = [s.version for s in declared_optuna().specifier if s.operator in (">=", "==")]
    assert len(lows) == 1, f"pyproject.toml must give optuna one lower bound, got {declared_optuna()}"
    return lows[0]


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def _unmet(target: Path) -> list:
    """Requirements of the packages in ``target`` that neither ``target`` nor this environment meets."""
    here = {d.metadata["Name"].lower().replace("_", "-"): d.version
            for d in importlib.metadata.distributions(path=[str(target)])}
    unmet = []
    for dist in importlib.metadata.distributions(path=[str(target)]):
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = req.name.lower().replace("_", "-")
            try:
                have = here.get(name) or importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                have = None
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.append(str(req))
    return sorted(set(unmet))


def install(target: Path, requirement: str) -> str:
    """Install ``requirement`` into ``target`` and what it needs beyond this environment; its version."""
    _pip("--no-deps", "--target", str(target), requirement)
    for _ in range(6):
        unmet = _unmet(target)
        if not unmet:
            break
        _pip("--no-deps", "--target", str(target), *unmet)
    else:
        pytest.fail(f"could not meet the requirements {unmet} of {requirement}")
    return next(d.version for d in importlib.metadata.distributions(path=[str(target)])
                if d.metadata["Name"].lower() == "optuna")


def run_optuna_tests(target: Path, version: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    seen = subprocess.run([sys.executable, "-c", "import optuna; print(optuna.__version__)"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert seen.stdout.strip() == version, seen.stdout + seen.stderr
    outputs = []
    for name, keyword in OPTUNA_TESTS.items():
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/{name}"]
        done = subprocess.run(cmd + (["-k", keyword] if keyword else []), capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=1800)
        outputs.append(f"== {name} (optuna {version}): rc {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
        if done.returncode != 0:
            return subprocess.CompletedProcess(cmd, done.returncode, "\n".join(outputs), "")
    return subprocess.CompletedProcess(cmd, 0, "\n".join(outputs), "")


def test_the_list_covers_every_optuna_test():
    mentioning = {p.name for p in (ROOT / "tests").glob("test_*.py")
                  if p.name != Path(__file__).name and re.search(r"\btpe\b|optuna", p.read_text(), re.I)}
    assert mentioning == set(OPTUNA_TESTS), "update OPTUNA_TESTS: these files name tpe or optuna"


def test_the_package_declares_a_range_and_the_setup_pins_one_version():
    spec = declared_optuna().specifier
    assert {s.operator for s in spec} == {">=", "<"}, f"optuna must be a range in pyproject.toml, got {spec}"
    pinned = re.search(r"^optuna==(\S+)$", (ROOT / "requirements-pinned.txt").read_text(), re.M)
    assert pinned and spec.contains(pinned.group(1)), "the pinned optuna must lie in the declared range"


@pytest.mark.slow
@pytest.mark.parametrize("end", ["lowest", "highest"])
def test_optuna_tests_pass_at_each_end_of_the_declared_range(end, tmp_path):
    wanted = f"optuna=={lowest_supported()}" if end == "lowest" else f"optuna{declared_optuna().specifier}"
    version = install(tmp_path / "site", wanted)
    done = run_optuna_tests(tmp_path / "site", version)
    print(done.stdout)
    assert done.returncode == 0, done.stdout
