"""Hardware-aware search on tabular benchmarks: the numbers in docs/benchmarks-hardware.md.

``constrained``: NAS-Bench-Graph cora with a latency limit at the 25th percentile of the table's
latencies. Each strategy gets the MnasNet hard-constraint reward ACC · (LAT / T)^w (w = 0 under
the limit, -1 over it) for ``--budget`` queries and ``--seeds`` seeds; reported per strategy:
whether every returned best meets the limit, and the gap (points) between the best validation
accuracy among all architectures that meet it and the best one found. Random search's expected
gap is also computed exactly from the table (i.i.d. uniform token sequences, and uniform rows).

``pareto``: multi-objective regularized evolution against random search at equal budgets; the
hypervolume of all queried points (validation accuracy up, second metric down) as a fraction
of the hypervolume of the whole table's front, with a fixed reference point (the table's worst
value of each metric), on nbgraph-cora (accuracy vs latency) and nb201-cifar10 (accuracy vs
accuracy lost to post-training quantisation).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/hardware/hardware_targets.py constrained [--seeds 20]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/hardware/hardware_targets.py pareto [--seeds 20]

Results (JSON) go to benchmarks/results/hardware/.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

from nasforge.compare import analytic
from nasforge.compare.runner import BenchmarkPlan, run_benchmark
from nasforge.objectives.pareto import hypervolume, pareto_front
from nasforge.spaces import create_space

OUT = Path("benchmarks/results/hardware")

# REINFORCE as in the paper, with the tabular harness's defaults (runner.TABULAR_DEFAULTS), the
# best of a small sweep on this task (see the docs), and the harness defaults with dedup.
CONSTRAINED_STRATEGIES = {
    "random": {},
    "reinforce:paper": {"learning_rate": 0.0006, "batch_size": 8, "entropy_weight": 1e-4},
    "reinforce": {},
    "reinforce:tuned": {"learning_rate": 0.02, "batch_size": 4, "entropy_weight": 0.01},
    "reinforce:dedup": {"dedup": True},
    "evolution": {},
    "local-search": {},
    "bananas": {},
}

PARETO_TASKS = {
    "nbgraph-cora": ["val_acc", "latency_ms"],
    "nb201-cifar10": ["val_acc", "ptq_acc_drop"],
}


def _stats(x) -> Dict[str, float]:
    x = np.asarray(x, dtype=float)
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
            "median": float(np.median(x)), "min": float(x.min()), "max": float(x.max())}


def _run(strategy: str, settings: Dict[str, Any], benchmark: str, seeds: List[int], budget: int,
         reward: Dict[str, Any] = None, record: List[str] = ()) -> List[Dict[str, Any]]:
    name = strategy.split(":")[0]
    plan = BenchmarkPlan(strategies=[name], benchmarks=[benchmark], seeds=seeds, budget=budget,
                         settings={name: settings} if settings else {}, reward=reward, record=list(record))
    result = run_benchmark(plan, workers=1)
    if result.errors():
        raise RuntimeError(result.errors()[0]["error"])
    return result.runs


def random_expected_gap(space, limit: float, budget: int) -> Dict[str, float]:
    """E[best feasible val among ``budget`` i.i.d. draws], as a gap to the best feasible val."""
    table = space.all_metrics()
    ok = table["latency_ms"] <= limit
    best = float(table["val_acc"][ok].max())
    floor = float(table["val_acc"].min()) - 1.0  # an infeasible draw counts as worse than anything
    val = np.where(ok, table["val_acc"], floor)
    out = {}
    for label, weights in (("tokens", analytic.row_weights(space)), ("rows", None)):
        expected = analytic.expected_best_test(val, val, [budget], weights)[0]
        out[label] = 100 * (best - float(expected))
    return out


def constrained_task():
    """The space, the latency limit (the table's 25th percentile), the best validation accuracy
    among rows within it, and MnasNet's hard-constraint reward for that limit."""
    space = create_space("nbgraph-cora")
    table = space.all_metrics()
    limit = float(np.percentile(table["latency_ms"], 25))
    best_feasible = float(table["val_acc"][table["latency_ms"] <= limit].max())
    reward = {"metric": "val_acc", "constraints": [f"latency_ms<={limit!r}"], "constraint_mode": "mnasnet-hard"}
    return space, limit, best_feasible, reward


def constrained_outcomes(runs: List[Dict[str, Any]], space, limit: float, best_feasible: float):
    """Per run: the gap in points (NaN when nothing was found), whether the returned best meets the
    limit, and the share of queries over it."""
    gaps, feasible_best, infeasible = [], [], []
    for run in runs:
        best = run["improvements"][-1] if run["improvements"] else None
        feasible_best.append(best is not None and space.lookup(best["tokens"])["latency_ms"] <= limit)
        gaps.append(100 * (best_feasible - (best["val"] if best else np.nan)))
        infeasible.append(run["infeasible"] / run["queries"])
    return gaps, feasible_best, infeasible


def constrained(args) -> Dict[str, Any]:
    space, limit, best_feasible, reward = constrained_task()
    table = space.all_metrics()
    ok = table["latency_ms"] <= limit
    seeds = list(range(args.seeds))
    result: Dict[str, Any] = {
        "limit_ms": limit, "best_feasible_val": best_feasible, "best_val": float(table["val_acc"].max()),
        "feasible_rows": int(ok.sum()), "rows": int(len(ok)), "budget": args.budget, "seeds": seeds,
        "reward": reward, "random_expected_gap": random_expected_gap(space, limit, args.budget), "strategies": {},
    }
    for label, settings in CONSTRAINED_STRATEGIES.items():
        start = time.perf_counter()
        runs = _run(label, settings, "nbgraph-cora", seeds, args.budget, reward)
        gaps, feasible_best, infeasible = constrained_outcomes(runs, space, limit, best_feasible)
        result["strategies"][label] = {
            "settings": settings, "gap": _stats(gaps), "gaps": gaps, "best_always_feasible": all(feasible_best),
            "found_best_feasible": int(sum(g < 1e-9 for g in gaps)), "infeasible_share": _stats(infeasible),
            "wall_s": time.perf_counter() - start,
        }
        print(f"{label:16s} gap {np.mean(gaps):.3f} ± {np.std(gaps, ddof=1):.3f}  "
              f"best feasible {all(feasible_best)}  infeasible queries {np.mean(infeasible):.2f}", flush=True)
    return result


def pareto(args) -> Dict[str, Any]:
    seeds = list(range(args.seeds))
    result: Dict[str, Any] = {"budgets": args.budgets, "seeds": seeds, "tasks": {}}
    for benchmark, metrics in PARETO_TASKS.items():
        space = create_space(benchmark)
        table = space.all_metrics()
        points = np.stack([table[m] for m in metrics], axis=1)
        directions = ["maximize", "minimize"]
        ref = np.array([points[:, 0].min(), points[:, 1].max()])  # the table's worst of each
        front = points[pareto_front(points, directions)]
        hv_table = hypervolume(front, ref, directions)
        task: Dict[str, Any] = {"metrics": metrics, "reference": ref.tolist(), "table_hv": hv_table,
                                "table_front_size": int(len(front)), "strategies": {}}
        contenders = {"random": ("random", {}),
                      "evolution-mo": ("evolution", {"objectives": [f"{metrics[0]}:max", f"{metrics[1]}:min"],
                                                     **args.evolution})}
        for label, (name, settings) in contenders.items():
            runs = _run(name, settings, benchmark, seeds, max(args.budgets), record=metrics)
            per_budget = {}
            for b in args.budgets:
                hv = [hypervolume(np.asarray(r["points"][:b]), ref, directions) / hv_table for r in runs]
                per_budget[str(b)] = {"hv_fraction": _stats(hv), "values": hv}
            task["strategies"][label] = {"settings": settings, "budgets": per_budget}
        for b in args.budgets:
            evo = np.array(task["strategies"]["evolution-mo"]["budgets"][str(b)]["values"])
            rnd = np.array(task["strategies"]["random"]["budgets"][str(b)]["values"])
            task.setdefault("paired", {})[str(b)] = {"evolution_wins": int((evo > rnd).sum()),
                                                     "mean_difference": float((evo - rnd).mean())}
            print(f"{benchmark} b={b}: random {rnd.mean():.4f} ± {rnd.std(ddof=1):.4f}, evolution-mo "
                  f"{evo.mean():.4f} ± {evo.std(ddof=1):.4f}, evolution better in "
                  f"{(evo > rnd).sum()}/{len(evo)} seeds",
                  flush=True)
        result["tasks"][benchmark] = task
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=("constrained", "pareto"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200, help="constrained: queries per run")
    parser.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")], default=[100, 200],
                        help="pareto: budgets at which the hypervolumes are compared")
    parser.add_argument("--evolution", type=json.loads, default={},
                        help='pareto: extra evolution settings as JSON, e.g. \'{"sample_size": 10}\'')
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    result = constrained(args) if args.target == "constrained" else pareto(args)
    result["machine"] = f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}"
    result["wall_s"] = time.perf_counter() - start
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{args.target}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
