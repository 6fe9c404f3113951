"""What the store costs per trial as it grows to 10,000 trials (issue target: at most 2 ms).

Per trial the search loop does exactly what is timed here, on a real SQLite file: record the
RUNNING trial with the strategy state after ``ask`` (one transaction), record the result with the
state after ``tell`` (one transaction; the state after each controller update is kept), and read
the trial back. The strategy is a real REINFORCE controller on the default 6-layer chain-cnn
space, asked and told for real (with a synthetic reward) so that its weights change every m
trials as in a search; only the store's calls are timed.

    .venv/bin/python benchmarks/speed/store_cost.py --trials 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nasforge.spaces.chain_cnn import ChainCNNSpace
from nasforge.store import Store, dump_state
from nasforge.strategies.reinforce import Reinforce


def one_run(trials: int, window: int, m: int) -> dict:
    space = ChainCNNSpace()
    strategy = Reinforce()
    strategy.setup(space, seed=0)
    rng = np.random.default_rng(0)
    per_window, parts = [], {"add": [], "finish": [], "read": []}
    elapsed = 0.0
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "trials.sqlite") as store:
        for n in range(trials):
            proposal = strategy.ask()
            tokens = proposal.tokens
            state = strategy.state_dict()
            t0 = time.perf_counter()
            tid = store.add_trial(n, tokens, space.arch_hash(tokens), n, proposal.info, strategy_state=state)
            t1 = time.perf_counter()
            value = float(rng.uniform())
            updates = strategy.updates
            strategy.tell(tokens, value ** 3, proposal.info)
            state = strategy.state_dict()
            t2 = time.perf_counter()
            store.finish_trial(tid, "COMPLETE", {"val_acc": value, "params": 10000, "epochs": [0.5] * 8}, value,
                               value ** 3, strategy_state=state, keep_state=strategy.updates != updates)
            t3 = time.perf_counter()
            store.trial(tid)
            t4 = time.perf_counter()
            for key, a, b in (("add", t0, t1), ("finish", t2, t3), ("read", t3, t4)):
                parts[key].append(b - a)
            elapsed += (t1 - t0) + (t4 - t2)
            if (n + 1) % window == 0:
                per_window.append({"trials": n + 1, "ms_per_trial": 1000 * elapsed / window})
                elapsed = 0.0
        size = (Path(tmp) / "trials.sqlite").stat().st_size
    last = slice(-window, None)
    return {"windows": per_window, "state_bytes": len(dump_state(state)), "file_bytes": size,
            "states_kept": strategy.updates,
            "last_window_ms": {k: 1000 * statistics.mean(v[last]) for k, v in parts.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10000)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--m", type=int, default=8, help="a kept state every m trials (REINFORCE updates)")
    p.add_argument("--out", default="benchmarks/results/store_cost.json")
    args = p.parse_args()
    runs = []
    for r in range(args.repeats):
        runs.append(one_run(args.trials, args.window, args.m))
        print(json.dumps({"repeat": r, "windows": runs[-1]["windows"], "parts": runs[-1]["last_window_ms"]}),
              flush=True)
    table = []
    for i, w in enumerate(runs[0]["windows"]):
        values = [run["windows"][i]["ms_per_trial"] for run in runs]
        table.append({"trials": w["trials"], "median_ms": statistics.median(values), "runs": values})
    print(f"state {runs[0]['state_bytes']} bytes; file {runs[0]['file_bytes'] / 2**20:.1f} MiB")
    for row in table:
        print(f"{row['trials']:>6} trials: {row['median_ms']:.3f} ms per trial (runs "
              + ", ".join(f"{v:.3f}" for v in row["runs"]) + ")")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "table": table, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
