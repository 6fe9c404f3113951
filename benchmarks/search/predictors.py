"""Learned predictors: fitted on 100 architectures, Kendall tau on all the others.

Benchmarks: nb201-cifar10 (15,625 cells; the table's one accuracy), and the MNIST-1D chain-cnn
table made by ``nasforge tabulate`` when it exists (fitted on validation accuracy, the signal a
search sees; tau against validation and test accuracy of the rest). Every predictor type, each
encoding, several seeds (the seed draws the 100 training architectures and seeds the model).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search/predictors.py --seeds 10
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.predictors import PREDICTORS, create_predictor, encode_many, rank_correlation
from nasforge.spaces import create_space
from table_rows import load_rows  # benchmarks/search/table_rows.py

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "nasforge" / "tables" / "data" / "mnist1d_chain.jsonl.gz"


def nb201_problem():
    space = create_space("nb201-cifar10")
    table = space.all_metrics()
    tokens = [tuple(t) for t in table["tokens"].tolist()]
    y = np.asarray(table["val_acc"], dtype=np.float64)
    return space, tokens, {"fit": y, "val": y}, ("onehot", "path")


def table_problem(path: Path):
    space_settings, rows = load_rows(path)
    settings = {k: v for k, v in space_settings.items() if k != "name"}
    space = create_space(space_settings["name"], **settings)
    tokens = [tuple(r["tokens"]) for r in rows]
    val = np.array([r["val_acc"] for r in rows], dtype=np.float64)
    test = np.array([r["test_acc"] for r in rows], dtype=np.float64)
    return space, tokens, {"fit": val, "val": val, "test": test}, ("onehot",)


def run(name, problem, seeds, train_size, results):
    space, tokens, targets, encodings = problem
    n = len(tokens)
    if n <= train_size + 10:
        print(f"{name}: only {n} rows, need more than {train_size + 10}; skipped")
        return
    for encoding in encodings:
        x = encode_many(space, tokens, encoding).astype(np.float64)
        for predictor in PREDICTORS.names():
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                order = rng.permutation(n)
                train, rest = order[:train_size], order[train_size:]
                start = time.perf_counter()
                model = create_predictor(predictor, seed=seed).fit(x[train], targets["fit"][train])
                fit_s = time.perf_counter() - start
                pred = model.predict(x[rest])
                row = {"benchmark": name, "encoding": encoding, "predictor": predictor, "seed": seed,
                       "fit_seconds": fit_s, "rows": n, "train": train_size}
                for target, y in targets.items():
                    if target == "fit":
                        continue
                    corr = rank_correlation(y[rest], pred)
                    row[f"kendall_{target}"], row[f"spearman_{target}"] = corr["kendall"], corr["spearman"]
                results.append(row)
                print(json.dumps(row), flush=True)


def summarise(results):
    lines = ["| benchmark | encoding | predictor | Kendall tau median | mean ± std | Spearman mean | "
             "tau vs test (median) | fit s (mean) | seeds |", "|---" * 9 + "|"]
    keys = sorted({(r["benchmark"], r["encoding"], r["predictor"]) for r in results})
    for key in keys:
        rows = [r for r in results if (r["benchmark"], r["encoding"], r["predictor"]) == key]
        tau = np.array([r["kendall_val"] for r in rows])
        rho = np.array([r["spearman_val"] for r in rows])
        test = [r["kendall_test"] for r in rows if "kendall_test" in r]
        test_s = f"{np.median(test):.3f}" if test else "-"
        fit = np.mean([r["fit_seconds"] for r in rows])
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {np.median(tau):.3f} | {tau.mean():.3f} ± {tau.std():.3f} "
                     f"| {rho.mean():.3f} | {test_s} | {fit:.2f} | {len(rows)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--train", type=int, default=100)
    parser.add_argument("--table", default=str(DEFAULT_TABLE), help="MNIST-1D table from nasforge tabulate (or its run directory)")
    parser.add_argument("--skip-nb201", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/predictors.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    if not args.skip_nb201:
        run("nb201-cifar10", nb201_problem(), args.seeds, args.train, results)
    if Path(args.table).exists():
        run("mnist1d-chain", table_problem(Path(args.table)), args.seeds, args.train, results)
    else:
        print(f"no table at {args.table}: MNIST-1D part skipped")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(summarise(results))


if __name__ == "__main__":
    main()
