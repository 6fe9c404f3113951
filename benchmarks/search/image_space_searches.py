"""Issue 19's protocol for a trainable image space: one search per seed, stopped after a fixed
wall time, then its best trial retrained and tested as a user would (`nasforge retrain`).

Each search is the real CLI (`nasforge search --budget 100000`), stopped with SIGTERM after
``--minutes`` (the search stops cleanly and keeps its finished trials); then `nasforge retrain
--rerank 1 --seed SEED` trains the search's best with the final recipe on train+validation and
tests it. The hand-designed baselines to compare with are `mobile_hand_designed.py --retrain`
(and `hand_designed.py`), trained with the same recipe over the same seeds.

    python benchmarks/search/image_space_searches.py --space mobile-blocks --dataset digits \\
        --seeds 0 1 2 --minutes 10 [--workers 2] [--set execution.threads_per_worker=1 ...]

One JSON line per seed: children finished, the best trial (its validation accuracy, summary,
parameters, FLOPs) and the retrained test accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from anytime_real import run_for_minutes  # benchmarks/search/anytime_real.py


def search_then_retrain(space: str, dataset: str, seed: int, minutes: float, workers: int, sets: List[str],
                        folder: Path, retrain_epochs: Optional[int] = None) -> dict:
    from nasforge.spaces.base import space_of_section
    from nasforge.store import Store, store_path
    from nasforge.stored_config import read_config

    nasforge = [sys.executable, "-m", "nasforge"]
    command = nasforge + ["search", "--space", space, "--dataset", dataset, "--seed", str(seed),
                          "--budget", "100000", "--workers", str(workers), "--experiment", str(folder), "--quiet"]
    for item in sets:
        command += ["--set", item]
    start = time.time()
    run_for_minutes(command, minutes)  # stops the script if the search fails
    search_s = time.time() - start
    epochs = ["--epochs", str(retrain_epochs)] if retrain_epochs else []
    retrain = subprocess.run(nasforge + ["retrain", "--experiment", str(folder), "--rerank", "1", "--seed", str(seed)]
                             + epochs, capture_output=True, text=True)
    if retrain.returncode != 0:
        raise SystemExit(f"retrain failed for seed {seed}:\n{retrain.stderr[-2000:]}")
    with Store(store_path(folder), readonly=True) as store:
        trials = store.trials()
        done = [t for t in trials if t.state == "COMPLETE" and t.metrics.get("val_acc") is not None]
        retrained = store.evaluations("retrain")[-1]  # the trial `nasforge retrain` chose: the search's best
        searched = space_of_section(read_config(store)["space"])
    best = next(t for t in trials if t.id == retrained["trial_id"])
    metrics = retrained["metrics"]
    return {"space": space, "dataset": dataset, "seed": seed, "minutes": minutes, "workers": workers,
            "children": len(done), "search_s": round(search_s, 1), "best_trial": best.number,
            "best_val_acc": best.metrics["val_acc"], "summary": searched.summary(tuple(best.tokens)),
            "test_acc": metrics["test_acc"], "params": metrics.get("params"), "flops": metrics.get("flops"),
            "retrain_s": metrics.get("train_seconds"), "load_after": round(os.getloadavg()[0], 2),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mobile-blocks")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--retrain-epochs", type=int, help="default: nasforge retrain's (60)")
    parser.add_argument("--keep", help="keep the experiments in this folder (default: a temporary one)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="passed to nasforge search")
    args = parser.parse_args()
    accs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for seed in args.seeds:
            result = search_then_retrain(args.space, args.dataset, seed, args.minutes, args.workers, args.sets,
                                         root / f"{args.space}-{args.dataset}-{seed}", args.retrain_epochs)
            accs.append(result["test_acc"])
            print(json.dumps(result), flush=True)
    if len(accs) > 1:
        print(json.dumps({"test_acc_mean": statistics.mean(accs), "test_acc_sd": statistics.stdev(accs),
                          "test_acc_min": min(accs), "test_acc_max": max(accs)}), flush=True)


if __name__ == "__main__":
    main()
