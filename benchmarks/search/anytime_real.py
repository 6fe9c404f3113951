"""Best validation accuracy found after 5, 10 and 15 minutes of a real search (issue 16): the
default `nasforge search` (MNIST-1D, chain-cnn, 8-epoch children) with each strategy, one search
at a time, stopped with SIGTERM at the time limit (the search stops cleanly and keeps its trials).

A trial counts at a time t when it finished within t seconds of the search's first trial starting.

    python benchmarks/search/anytime_real.py --strategies reinforce-elite evolution --seeds 0 [--minutes 15]

A strategy may carry settings, ``name:key=value,key=value`` (tune_strategies.py's form), passed to the
search as ``--set strategy.key=value``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKS = (5, 10, 15)


def run_for_minutes(command: list, minutes: float) -> subprocess.Popen:
    """Run a `nasforge search` command line, stopped with SIGTERM after ``minutes`` if still running
    (a search stops cleanly on SIGTERM and keeps its finished trials). A search that fails instead
    (one that cannot start, say, on a folder already holding trials) stops the script with its
    error, so that no folder's old trials are measured as this search's."""
    search = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        search.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        search.send_signal(signal.SIGTERM)
    _, errors = search.communicate(timeout=600)
    if search.returncode not in (0, 143):  # 143: stopped by the SIGTERM above
        raise SystemExit(f"{' '.join(command[2:])} failed (exit {search.returncode}): {errors.strip()}")
    return search


def one_search(strategy: str, seed: int, minutes: float, folder: Path) -> dict:
    from nasforge.store import Store, store_path

    name, _, settings = strategy.partition(":")
    flags = [a for item in filter(None, settings.split(",")) for a in ("--set", f"strategy.{item}")]
    command = [sys.executable, "-m", "nasforge", "search", "--strategy", name, *flags, "--seed", str(seed),
               "--budget", "100000", "--experiment", str(folder), "--quiet"]
    start = time.time()
    search = run_for_minutes(command, minutes)
    with Store(store_path(folder), readonly=True) as store:
        trials = store.trials()
    first = min(t.started for t in trials if t.started is not None)
    done = [(t.finished - first, t.metrics.get("val_acc")) for t in trials
            if t.state == "COMPLETE" and t.finished is not None and t.metrics.get("val_acc") is not None]
    best = {}
    for mark in MARKS:
        within = [acc for when, acc in done if when <= mark * 60]
        best[str(mark)] = max(within) if within else None
    return {"strategy": strategy, "seed": seed, "best_val_acc_at_minutes": best, "completed": len(done),
            "exit": search.returncode, "wall_s": time.time() - start, "load_after": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["reinforce-elite", "evolution"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--minutes", type=float, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for strategy in args.strategies:
                folder = Path(tmp) / f"{strategy.replace(':', '-').replace(',', '-').replace('=', '-')}-{seed}"
                result = one_search(strategy, seed, args.minutes, folder)
                result["date"] = time.strftime("%Y-%m-%d %H:%M")
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
