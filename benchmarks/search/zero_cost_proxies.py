"""Zero-cost proxies against trained test accuracy on the MNIST-1D chain-cnn benchmark.

For every architecture of the table, every proxy at initialisation (one minibatch of 64 from the
training split, the same batch for all), for several initialisation seeds; Spearman's rho of
each proxy with test accuracy (per seed, then median and mean ± std over seeds); cost per
architecture; and two combinations: the mean rank of proxies (fixed a priori: all six
non-trivial proxies, and the three best published on NB-201: synflow, jacob_cov, naswot) and a
GBT predictor on the proxy vector fitted on 100 architectures (rho on the rest, 10 splits,
with the best single proxy on the same rows as the baseline).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search/zero_cost_proxies.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from nasforge.data.datasets import load_dataset
from nasforge.estimators.zero_cost import PROXIES, ZeroCostEstimator
from nasforge.predictors import create_predictor
from nasforge.spaces import create_space
from table_rows import load_rows  # benchmarks/search/table_rows.py

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "nasforge" / "tables" / "data" / "mnist1d_chain.jsonl.gz"
PUBLISHED_NB201_C10 = {"synflow": 0.74, "jacob_cov": 0.73, "snip": 0.58, "grad_norm": 0.58, "fisher": 0.36,
                       "naswot": None, "params": None, "flops": None}
NONTRIVIAL = ("synflow", "naswot", "snip", "grad_norm", "fisher", "jacob_cov")
TOP3_PUBLISHED = ("synflow", "jacob_cov", "naswot")


def spearman(a, b) -> float:
    return float(stats.spearmanr(a, b).statistic)


def mean_rank(scores: dict, names, rows=None) -> np.ndarray:
    return np.mean([stats.rankdata(scores[n] if rows is None else scores[n][rows]) for n in names], axis=0)


def finite(column: np.ndarray) -> np.ndarray:
    """-inf (no ReLU for NASWOT, a constant Jacobian) below every finite score, for the regressor."""
    column = column.copy()
    ok = np.isfinite(column)
    low = column[ok].min() if ok.any() else 0.0
    column[~ok] = low - 1.0 - abs(low)
    return column


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(DEFAULT_TABLE), help="table file or its run directory")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N rows (0: all)")
    parser.add_argument("--out", default="benchmarks/results/zero_cost_proxies.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    space_settings, rows = load_rows(args.table)
    if args.limit:
        rows = rows[: args.limit]
    space = create_space(space_settings["name"], **{k: v for k, v in space_settings.items() if k != "name"})
    estimator = ZeroCostEstimator(batch_size=args.batch_size)
    estimator.setup(space, load_dataset("mnist1d"))
    test = np.array([r["test_acc"] for r in rows])
    names = list(PROXIES)
    scores = {s: {n: np.zeros(len(rows)) for n in names} for s in range(args.seeds)}
    seconds = {n: [] for n in names}
    start = time.perf_counter()
    for i, row in enumerate(rows):
        for s in range(args.seeds):
            m = estimator.evaluate(tuple(row["tokens"]), seed=s)
            for n in names:
                scores[s][n][i] = m[f"proxy_{n}"]
                seconds[n].append(m["proxy_seconds_each"][n])
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(rows)} architectures, {time.perf_counter() - start:.0f} s", flush=True)

    # single proxies and a-priori mean-rank combinations, per seed
    per_seed = {n: [spearman(scores[s][n], test) for s in range(args.seeds)] for n in names}
    for label, group in (("mean rank, six proxies", NONTRIVIAL), ("mean rank, synflow+jacob_cov+naswot", TOP3_PUBLISHED)):
        per_seed[label] = [spearman(mean_rank(scores[s], group), test) for s in range(args.seeds)]

    # a predictor on the proxy vector: 100 architectures to fit, rho on the rest; baseline on same rows
    learned, best_single_same_rows = [], []
    best_single = max(names, key=lambda n: np.median(per_seed[n]))
    x = np.stack([finite(scores[0][n]) for n in names], axis=1)
    x = np.sign(x) * np.log1p(np.abs(x))  # scores span many orders of magnitude
    fit_size = min(100, len(rows) // 2)  # 100 once the table is complete
    if len(rows) >= 40:
        for split in range(10):
            order = np.random.default_rng(split).permutation(len(rows))
            fit, rest = order[:fit_size], order[fit_size:]
            model = create_predictor("gbt", seed=split).fit(x[fit], test[fit])
            learned.append(spearman(model.predict(x[rest]), test[rest]))
            best_single_same_rows.append(spearman(scores[0][best_single][rest], test[rest]))

    lines = [f"Rows: {len(rows)} architectures; init seeds: {args.seeds}; batch {args.batch_size}.", "",
             "| proxy | Spearman rho median | mean ± std over seeds | NB-201 CIFAR-10 (published) | ms per architecture (median) |",
             "|---|---|---|---|---|"]
    for label, values in per_seed.items():
        pub = PUBLISHED_NB201_C10.get(label)
        cost = f"{1000 * np.median(seconds[label]):.1f}" if label in seconds else \
            f"{1000 * sum(np.median(seconds[n]) for n in (NONTRIVIAL if 'six' in label else TOP3_PUBLISHED)):.1f}"
        lines.append(f"| {label} | {np.median(values):.3f} | {np.mean(values):.3f} ± {np.std(values):.3f} | "
                     f"{pub if pub is not None else '-'} | {cost} |")
    if learned:
        lines += ["", f"GBT on the 8 proxies (seed-0 scores), fitted on {fit_size}, rho on the other {len(rows) - fit_size}: "
                      f"median {np.median(learned):.3f}, mean {np.mean(learned):.3f} ± {np.std(learned):.3f} "
                      f"(10 splits); best single proxy ({best_single}) on the same rows: median "
                      f"{np.median(best_single_same_rows):.3f}."]
    report = "\n".join(lines)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "rows": len(rows), "seeds": args.seeds, "table": str(args.table), "per_seed_spearman": per_seed,
        "ms_per_arch": {n: 1000 * float(np.median(v)) for n, v in seconds.items()},
        "learned_combination": learned, "best_single": best_single,
        "best_single_same_rows": best_single_same_rows, "report": report}, indent=1))


if __name__ == "__main__":
    main()
