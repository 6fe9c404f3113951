"""Statistics of a `nasforge tabulate` table, and strategies compared on it with `nasforge benchmark`.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search/mnist1d_table.py [--table FILE] [--seeds 20] [--budget 100]
        [--no-strategies] [--noise-rows 10 --noise-seeds 2]

Prints Markdown (for docs/benchmarks-mnist1d-table.md): the accuracy distribution, the best
architecture, the spread of cost metrics, the rank agreement of validation and test accuracy, the
exact expected regret of random search, and the regret table of `nasforge benchmark` runs on
`mnist1d-chain` (strategies that stay in the table through sample/mutate/neighbours) and on
`mnist1d-chain-nearest` (REINFORCE and PPO, whose controllers write tokens themselves).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "results"


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def table_statistics(path: Path) -> None:
    from nasforge.compare.analytic import expected_regret
    from nasforge.tables.own_table import OwnTableSpace

    space = OwnTableSpace(table=str(path))
    h = space.table.header
    t = space.all_metrics()
    val, test = t["val_acc"], t["test_acc"]
    q = [0, 10, 25, 50, 75, 90, 100]
    print(f"### The table\n\n{h['rows']} architectures ({h['failed']} failed to train), space {h['space']}, "
          f"dataset {h['dataset']}, recipe epochs {h['recipe'].get('epochs')}, created {h['created']}, "
          f"file {path.name} ({path.stat().st_size / 1024:.0f} KiB).\n")
    print("| metric | min | p10 | p25 | median | p75 | p90 | max | mean ± std |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, values, fmt in (("val_acc %", val, pct), ("test_acc %", test, pct),
                              ("params", t["params"], lambda v: f"{v:,.0f}"),
                              ("FLOPs", t["flops"], lambda v: f"{v:,.0f}"),
                              ("latency_ms", t["latency_ms"], lambda v: f"{v:.3f}"),
                              ("train_seconds", t["train_seconds"], lambda v: f"{v:.2f}")):
        cells = [fmt(np.percentile(values, p)) for p in q]
        print(f"| {name} | " + " | ".join(cells) + f" | {fmt(values.mean())} ± {fmt(values.std(ddof=1))} |")
    best_val = space.best("val_acc")
    best_test = space.best("test_acc")
    print(f"\nBest by validation: `{space.summary(best_val['tokens'])}`: val {pct(best_val['val_acc'])}%, "
          f"test {pct(best_val['test_acc'])}% ({best_val['params']:,.0f} parameters).  ")
    print(f"Best by test: `{space.summary(best_test['tokens'])}`: test {pct(best_test['test_acc'])}%, "
          f"val {pct(best_test['val_acc'])}%.  ")
    top = np.sort(test)[::-1]
    print(f"Spread at the top: 1st {pct(top[0])}, 5th {pct(top[4])}, 10th {pct(top[9])}, 50th {pct(top[49])}; "
          f"{(test >= 0.9).sum()} rows reach 90% test, {(test < 0.3).sum()} stay below 30%.  ")
    print(f"Validation vs test accuracy: Spearman {spearmanr(val, test)[0]:.3f}, "
          f"Kendall {kendalltau(val, test)[0]:.3f}, "
          f"mean |val - test| {pct(np.abs(val - test).mean())} points.  ")
    for name in ("params", "flops", "latency_ms"):
        print(f"Spearman of {name} with test accuracy: {spearmanr(t[name], test)[0]:.3f}.  ")
    print(f"Training: {t['train_seconds'].sum() / 60:.1f} CPU-minutes in all, seconds_per_query = "
          f"{space.seconds_per_query:.2f}.\n")
    ks = [10, 25, 50, 100]
    reg = expected_regret(val, test, ks)
    print("Exact expected regret of random search (i.i.d. draws of rows, best by validation), points: " +
          ", ".join(f"{k}: {100 * r:.2f}" for k, r in zip(ks, reg)) + ".\n")


def training_noise(path: Path, rows: int, seeds: int) -> None:
    """Retrain ``rows`` table architectures (evenly spread over the test-accuracy ranking) with other
    seeds: how far one training run's accuracy is from another's, the table's own noise floor."""
    import torch

    from nasforge.tables.own_table import OwnTableSpace
    from nasforge.estimators.train_and_test import TrainAndTestEstimator

    torch.set_num_threads(1)
    space = OwnTableSpace(table=str(path))
    h = space.table.header
    recipe = {k: v for k, v in h["recipe"].items() if k not in ("measure",)}
    estimator = TrainAndTestEstimator(dataset=h["dataset"]["name"], **recipe)
    estimator.setup(space.base)
    t = space.all_metrics()
    order = np.argsort(t["test_acc"])
    picks = order[np.linspace(0, len(order) - 1, rows).round().astype(int)]
    spreads, diffs = [], []
    print(f"### Training noise\n\n{rows} rows spread over the ranking, each retrained with {seeds} more seeds "
          "(same recipe):\n")
    print("| architecture | table test % | other seeds' test % | std over all seeds |")
    print("| --- | ---: | --- | ---: |")
    for row in picks:
        tokens = tuple(int(x) for x in t["tokens"][row])
        others = [estimator.evaluate(tokens, 1000 + s)["test_acc"] for s in range(seeds)]
        values = np.array([t["test_acc"][row], *others])
        spreads.append(values.std(ddof=1))
        diffs += [abs(o - t["test_acc"][row]) for o in others]
        print(f"| `{space.summary(tokens).replace('|', '/')}` | {pct(t['test_acc'][row])} | "
              f"{', '.join(pct(o) for o in others)} | "
              f"{100 * values.std(ddof=1):.2f} |")
    print(f"\nMedian std over seeds {100 * np.median(spreads):.2f} points, mean {100 * np.mean(spreads):.2f}; "
          f"mean |other seed - table| {100 * np.mean(diffs):.2f} points.\n")


def run_benchmark_cli(strategies: str, benchmark: str, seeds: int, budget: int, tag: str) -> dict:
    out = OUT / f"mnist1d-table-{tag}"
    cmd = [sys.executable, "-m", "nasforge", "benchmark", "--strategies", strategies, "--benchmarks", benchmark,
           "--seeds", str(seeds), "--budget", str(budget), "--checkpoints", "25,50", "--workers", "1",
           "--format", "json", "--out", str(out)]
    print(f"`{' '.join(['nasforge'] + cmd[3:])}`\n")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"nasforge benchmark failed:\n{proc.stderr}\n{proc.stdout[-3000:]}")
    return json.loads((out / "runs.json").read_text())


def strategy_table(data: dict) -> None:
    print("| benchmark | strategy | queries | runs | mean test % | regret (points) mean ± se | failed queries |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in data["summary"]:
        print(f"| {row['benchmark']} | {row['strategy']} | {row['checkpoint']:.0f} | {row['runs']} | "
              f"{pct(row['test_mean'])} | {100 * row['regret_mean']:.2f} ± {100 * row['regret_se']:.2f} | "
              f"{row['failures_mean']:.1f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", default=str(ROOT / "nasforge" / "tables" / "data" / "mnist1d_chain.jsonl.gz"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--no-strategies", action="store_true")
    parser.add_argument("--noise-rows", type=int, default=0, help="retrain this many rows with other seeds")
    parser.add_argument("--noise-seeds", type=int, default=2)
    args = parser.parse_args()
    table_statistics(Path(args.table))
    if args.noise_rows:
        training_noise(Path(args.table), args.noise_rows, args.noise_seeds)
    if args.no_strategies:
        return
    print("### Strategies on the table\n")
    strategy_table(run_benchmark_cli("random,evolution,local-search,bananas", "mnist1d-chain", args.seeds,
                                     args.budget, "inside"))
    strategy_table(run_benchmark_cli("random,reinforce,ppo", "mnist1d-chain-nearest", args.seeds, args.budget,
                                     "nearest"))


if __name__ == "__main__":
    main()
