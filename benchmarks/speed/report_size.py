"""How long ``nasforge report`` takes for a 1,000-trial search, and how big the file is (issue 18
target: under 5 s and under 5 MB).

The search is REINFORCE on the ``mnist1d-chain`` table (m = 4, learning rate 0.02: 250 controller
updates, the costliest policy view), made once and reused. Each repeat runs the real command in a
fresh process (imports included) and records its wall time, its CPU time (user + system, which a
busy machine inflates less than wall time) and the file's size; the median is reported.

    .venv/bin/python benchmarks/speed/report_size.py --experiment runs/bench-report-1000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_search(folder: Path, trials: int) -> None:
    from nasforge import SearchConfig, run_search

    config = SearchConfig(budget=trials, seed=0)
    config.space = {"name": "mnist1d-chain"}
    config.strategy = {"name": "reinforce", "batch_size": 4, "learning_rate": 0.02}
    run_search(config, folder, resume=(folder / "trials.sqlite").exists())


def one_report(experiment: Path, out: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nasforge", "report", "--experiment", str(experiment),
                           "--out", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "bytes": out.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="runs/bench-report-1000")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    experiment = Path(args.experiment)
    if not (experiment / "trials.sqlite").exists():
        make_search(experiment, args.trials)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            runs.append(one_report(experiment, Path(tmp) / f"report-{k}.html"))
            print(json.dumps(runs[-1]), flush=True)
    summary = {key: statistics.median(r[key] for r in runs) for key in ("wall_s", "cpu_s", "bytes")}
    print(json.dumps({"median": summary, "repeats": args.repeats, "runs": runs, "experiment": str(experiment),
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                      "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}, indent=1))


if __name__ == "__main__":
    main()
