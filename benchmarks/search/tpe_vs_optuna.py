"""nasforge's ``tpe`` strategy against Optuna's own TPESampler driven directly, on nb201-cifar10.

Both see the same six decisions and the same reward (validation accuracy from the table) for
``--budget`` queries per seed; regret is the table's best test accuracy minus the test accuracy
of the best-by-validation architecture found, in points, at each checkpoint. "optuna" is what a
user of Optuna would write: one ``suggest_categorical`` per edge over the operation names,
``TPESampler(seed=seed)`` with its defaults, ``study.optimize``. Variants of the wrapper are given
as ``tpe:key=value,...`` like ``tune_strategies.py``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search/tpe_vs_optuna.py --seeds 100-119 \\
        tpe "tpe:multivariate=false"
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from typing import Dict, List

import optuna

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.estimators.base import create_estimator
from nasforge.spaces import create_space
from nasforge.strategies import create_strategy

from tune_strategies import expand, label


def seeds_of(text: str) -> List[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def direct_optuna(space, estimator, seed: int, budget: int) -> List[float]:
    """Test accuracy of the best-by-validation architecture after each query, plain Optuna."""
    curve: List[float] = []
    best = [-1.0, 0.0]

    def objective(trial):
        tokens = tuple(d.choices.index(trial.suggest_categorical(d.name, list(d.choices)))
                       for d in space.decisions)
        metrics = estimator.evaluate(tokens, seed)
        if metrics["val_acc"] > best[0]:
            best[:] = [metrics["val_acc"], metrics["test_acc"]]
        curve.append(best[1])
        return metrics["val_acc"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=budget)
    return curve


def wrapped(name: str, settings: Dict, space, estimator, seed: int, budget: int) -> List[float]:
    strategy = create_strategy(name, **settings)
    strategy.setup(space, seed)
    curve: List[float] = []
    best = [-1.0, 0.0]
    for _ in range(budget):
        proposal = strategy.ask()
        metrics = estimator.evaluate(proposal.tokens, seed)
        strategy.tell(proposal.tokens, float(metrics["val_acc"]), proposal.info)
        if metrics["val_acc"] > best[0]:
            best[:] = [metrics["val_acc"], metrics["test_acc"]]
        curve.append(best[1])
    return curve


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("strategies", nargs="*", default=["tpe"])
    parser.add_argument("--seeds", default="100-119", help="first-last (inclusive)")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[100, 300])
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space("nb201-cifar10")
    estimator = create_estimator("tabular")
    estimator.setup(space)
    top = float(space.all_metrics()["test_acc"].max())
    runs = {"optuna TPESampler (direct)": lambda s: direct_optuna(space, estimator, s, args.budget)}
    for spec in args.strategies:
        for name, settings in expand(spec):
            runs[label(name, settings)] = (lambda n, st: lambda s: wrapped(n, st, space, estimator, s,
                                                                           args.budget))(name, settings)
    seeds = seeds_of(args.seeds)
    print(f"nb201-cifar10, seeds {args.seeds}, regret in points, mean ± std (seeds at regret 0)")
    for title, fn in runs.items():
        curves = [fn(seed) for seed in seeds]
        cells = []
        for c in args.checkpoints:
            regret = [100 * (top - curve[c - 1]) for curve in curves]
            cells.append(f"@{c}: {statistics.mean(regret):.3f} ± {statistics.stdev(regret):.3f} "
                         f"({sum(r <= 1e-9 for r in regret)}/{len(regret)})")
        print(f"{title:40s} " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
