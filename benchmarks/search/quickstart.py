"""Quick-start search quality and time: the default search, then `nasforge retrain` of what it found.

For each seed: `nasforge search --seed S` with every other setting at its default, timed, then
`nasforge retrain` (default: final selection among the top 3, then the longer schedule), reporting
the retrained architecture's test accuracy.
With `--strategies random` the same search by random search, for REINFORCE against random search at equal
budget and seeds. Results go to benchmarks/results/quickstart-*.json and are summarised on stdout.

    python benchmarks/search/quickstart.py --seeds 0 1 2 [--strategies reinforce random] [--budget N --epochs E] [--tag T]
    python benchmarks/search/quickstart.py --seeds 0 --tag asha --set 'training.pruning={"eta": 3, "min_epochs": 1}'

Each run also reports its compute: the child-epochs trained (pruned children count the epochs
they got) and the search's wall time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "results"


def run(args, cwd):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nasforge", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"nasforge {' '.join(args)} failed:\n{proc.stderr}\n{proc.stdout[-2000:]}")
    return proc.stdout, time.perf_counter() - start


def best_of(experiment, cwd):
    out, _ = run(["best", "--experiment", experiment, "--json", "--top", "1"], cwd)
    return json.loads(out)[0]


def compute(experiment: Path) -> dict:
    """Child-epochs trained and trials by state, read from the store."""
    import sqlite3

    con = sqlite3.connect(experiment / "trials.sqlite")
    rows = con.execute("SELECT state, metrics FROM trials").fetchall()
    con.close()
    epochs = sum(json.loads(m).get("epochs", 0) for _, m in rows)
    states = {s: sum(r[0] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAILED")}
    return {"child_epochs": epochs, "trials_by_state": states}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=["reinforce"], help="e.g. reinforce random")
    parser.add_argument("--budget", type=int, help="override the default budget")
    parser.add_argument("--epochs", type=int, help="override the default epochs per child")
    parser.add_argument("--no-retrain", action="store_true")
    parser.add_argument("--tag", default="default")
    parser.add_argument("--set", action="append", default=[], help="passed on to nasforge search --set")
    args = parser.parse_args()
    work = OUT / f"quickstart-{args.tag}"
    work.mkdir(parents=True, exist_ok=True)
    extra = []
    if args.budget:
        extra += ["--budget", str(args.budget)]
    if args.epochs:
        extra += ["--epochs", str(args.epochs)]
    for item in args.set:
        extra += ["--set", item]
    strategies = args.strategies
    rows = []
    for seed in args.seeds:
        for strategy in strategies:
            exp = f"{strategy}-seed{seed}"
            if (work / exp).exists():
                raise SystemExit(f"{work / exp} exists; remove it or use another --tag")
            _, search_s = run(["search", "--seed", str(seed), "--strategy", strategy, "--experiment", exp,
                               "--quiet", *extra], work)
            best = best_of(exp, work)
            row = {"seed": seed, "strategy": strategy, "search_seconds": search_s,
                   "best_val_acc": best["objective"], "best_tokens": best["tokens"], **compute(work / exp)}
            if not args.no_retrain:
                _, retrain_s = run(["retrain", "--experiment", exp], work)  # final selection, then retrain
                (model_dir,) = (work / exp / "retrain").glob("trial-*-seed-0")
                ev = json.loads((model_dir / "metrics.json").read_text())
                row.update(test_acc=ev["test_acc"], test_average_precision=ev["test_average_precision"],
                           retrain_seconds=retrain_s, params=ev["params"], flops=ev["flops"],
                           retrained_trial=int(model_dir.name.split("-")[1]))
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor() or '?'}",
               "python": platform.python_version(), "args": vars(args), "runs": rows}
    for strategy in strategies:
        sel = [r for r in rows if r["strategy"] == strategy]
        for key in ("search_seconds", "best_val_acc", "test_acc", "child_epochs"):
            vals = [r[key] for r in sel if key in r]
            if vals:
                summary[f"{strategy}_{key}"] = {
                    "median": statistics.median(vals), "mean": statistics.mean(vals),
                    "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "min": min(vals), "max": max(vals)}
    (OUT / f"quickstart-{args.tag}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
