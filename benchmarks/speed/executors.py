"""Throughput of the executors on synthetic evaluations (sleeps), against baselines in the same run.

local: a search with 2 local workers against the same search with 1 worker (serial), each
evaluation sleeping ``--seconds``. ray: a search with 16 concurrent Ray workers against bare Ray
tasks doing the same sleeps with 16 in flight, on one warm local Ray instance.

Throughput = trials / wall time of the evaluation phase (from the first trial's start to the
last one's end, read from the store), so process and Ray start-up are not counted for either side.

    .venv/bin/python benchmarks/speed/executors.py local --trials 40 --repeats 3
    .venv/bin/python benchmarks/speed/executors.py ray --trials 160 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nasforge import SearchConfig, Store, run_search
from nasforge.search import store_path


def config(trials: int, workers: int, seconds: float, executor: str, seed: int) -> SearchConfig:
    c = SearchConfig(budget=trials, seed=seed, dataset="digits")
    c.space = {"name": "chain-cnn", "num_layers": 3, "dims": 1}
    c.strategy = {"name": "random"}
    c.training = {"estimator": "synthetic", "seconds": seconds}
    c.execution = {"name": executor, "workers": workers}
    if executor == "ray":
        c.execution["cpus_per_trial"] = 1
    return c


def search_throughput(trials: int, workers: int, seconds: float, executor: str, seed: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run_search(config(trials, workers, seconds, executor, seed), Path(tmp) / "exp")
        with Store(store_path(Path(tmp) / "exp")) as store:
            rows = store.trials()
    span = max(t.finished for t in rows) - min(t.started for t in rows)
    return len(rows) / span


def bare_ray_throughput(trials: int, concurrency: int, seconds: float) -> float:
    import ray

    @ray.remote(num_cpus=1, max_retries=0)
    def sleep(s):
        time.sleep(s)
        return s

    start = time.perf_counter()
    pending, submitted = [], 0
    while submitted < trials or pending:
        while submitted < trials and len(pending) < concurrency:
            pending.append(sleep.remote(seconds))
            submitted += 1
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done)
    return trials / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", choices=("local", "ray"))
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--out", default="benchmarks/results/executors.json")
    args = p.parse_args()
    results = []
    if args.which == "local":
        for r in range(args.repeats):
            serial = search_throughput(args.trials, 1, args.seconds, "local", r)
            parallel = search_throughput(args.trials, 2, args.seconds, "local", r)
            results.append({"serial": serial, "two_workers": parallel, "ratio": parallel / serial})
            print(json.dumps(results[-1]), flush=True)
    else:
        import ray

        ray.init(num_cpus=args.concurrency, include_dashboard=False, log_to_driver=False)
        bare_ray_throughput(args.concurrency * 2, args.concurrency, args.seconds)  # warm the workers
        search_throughput(args.concurrency * 2, args.concurrency, args.seconds, "ray", 99)
        for r in range(args.repeats):
            bare = bare_ray_throughput(args.trials, args.concurrency, args.seconds)
            search = search_throughput(args.trials, args.concurrency, args.seconds, "ray", r)
            ideal = args.concurrency / args.seconds
            results.append({"bare_ray": bare, "search": search, "ratio": search / bare,
                            "bare_vs_ideal": bare / ideal})
            print(json.dumps(results[-1]), flush=True)
        ray.shutdown()
    summary = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print("median:", json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).with_name(f"executors-{args.which}.json").write_text(
        json.dumps({"args": vars(args), "runs": results, "median": summary}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
