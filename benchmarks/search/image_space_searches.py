"""Issue 19's protocol for a trainable image space: one search per seed, stopped after a fixed
wall time, then its best trial retrained and tested as a user would (`nasforge retrain`).

Each search is the real CLI (`nasforge search --budget 100000`), stopped with SIGTERM after
``--minutes`` (the search stops cleanly and keeps its finished trials); then `nasforge retrain
--rerank R --seed SEED` chooses the architecture (R = 1: the search's best; R = 3, nasforge's
default: the best of the top 3 after each is trained with the final recipe on the search's own
split), trains it with the final recipe on train+validation and tests it. ``--retrain-only``
repeats that step on searches kept with ``--keep``, without searching again; ``--search-only``
runs the searches and leaves that step for later (so that slow retrains can run side by side
after the timed searches, which want the machine to themselves).

The hand-designed baselines to compare with are `mobile_hand_designed.py --retrain` (MobileNetV2
scaled down, for mobile-blocks) and `nb201_resnet.py --retrain` (a small ResNet, for nb201-cell),
trained with the same recipe over the same seeds.

    python benchmarks/search/image_space_searches.py --space mobile-blocks --dataset digits \\
        --seeds 0 1 2 --minutes 10 [--workers 2] [--set execution.threads_per_worker=1 ...] \\
        [--rerank 1] [--keep FOLDER [--retrain-only | --search-only]]

One JSON line per seed: children finished, the trial chosen (its validation accuracy, summary,
parameters, FLOPs) and its retrained test accuracy.
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


def search(space: str, dataset: str, seed: int, minutes: float, workers: int, sets: List[str], folder: Path) -> float:
    """The real CLI search, stopped after ``minutes``; returns its wall seconds."""
    command = [sys.executable, "-m", "nasforge", "search", "--space", space, "--dataset", dataset, "--seed", str(seed),
               "--budget", "100000", "--workers", str(workers), "--experiment", str(folder), "--quiet"]
    for item in sets:
        command += ["--set", item]
    start = time.time()
    run_for_minutes(command, minutes)  # stops the script if the search fails
    return time.time() - start


def retrain(folder: Path, seed: int, rerank: int, retrain_epochs: Optional[int] = None) -> dict:
    """`nasforge retrain --rerank RERANK --seed SEED` on a finished search, as a user runs it; returns
    what it chose and measured."""
    from nasforge.spaces.base import space_of_section
    from nasforge.store import Store, store_path
    from nasforge.stored_config import read_config

    epochs = ["--epochs", str(retrain_epochs)] if retrain_epochs else []
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "nasforge", "retrain", "--experiment", str(folder),
                           "--rerank", str(rerank), "--seed", str(seed)] + epochs, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"retrain failed for {folder}:\n{done.stderr[-2000:]}")
    with Store(store_path(folder), readonly=True) as store:
        trials = store.trials()
        finished = [t for t in trials if t.state == "COMPLETE" and t.metrics.get("val_acc") is not None]
        retrained = store.evaluations("retrain")[-1]  # the trial this retrain chose
        searched = space_of_section(read_config(store)["space"])
    best = next(t for t in trials if t.id == retrained["trial_id"])
    metrics = retrained["metrics"]
    return {"seed": seed, "rerank": rerank, "children": len(finished), "chosen_trial": best.number,
            "chosen_val_acc": best.metrics["val_acc"], "search_best_val_acc": max(t.metrics["val_acc"] for t in finished),
            "summary": searched.summary(tuple(best.tokens)), "test_acc": metrics["test_acc"],
            "params": metrics.get("params"), "flops": metrics.get("flops"), "retrain_s": metrics.get("train_seconds"),
            "selection_s": round(time.time() - start, 1), "load_after": round(os.getloadavg()[0], 2),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mobile-blocks")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--retrain-epochs", type=int, help="default: nasforge retrain's (60)")
    parser.add_argument("--rerank", type=int, default=1,
                        help="nasforge retrain --rerank: 1 retrains the search's best; nasforge's default is 3")
    parser.add_argument("--keep", help="keep the experiments in this folder (default: a temporary one)")
    parser.add_argument("--retrain-only", action="store_true",
                        help="no search: retrain the searches already kept in --keep (with another --rerank, say)")
    parser.add_argument("--search-only", action="store_true",
                        help="only the timed searches, kept in --keep; retrain them later with --retrain-only")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="passed to nasforge search")
    args = parser.parse_args()
    if args.retrain_only and not args.keep:
        parser.error("--retrain-only needs --keep, the folder holding the searches")
    if args.search_only and (args.retrain_only or not args.keep):
        parser.error("--search-only needs --keep (where the searches are kept) and excludes --retrain-only")
    accs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for seed in args.seeds:
            folder = root / f"{args.space}-{args.dataset}-{seed}"
            searched = {}
            if not args.retrain_only:
                searched = {"space": args.space, "dataset": args.dataset, "minutes": args.minutes,
                            "workers": args.workers,
                            "search_s": round(search(args.space, args.dataset, seed, args.minutes, args.workers,
                                                     args.sets, folder), 1)}
            if args.search_only:
                print(json.dumps({"seed": seed, **searched}), flush=True)
                continue
            result = {**searched, **retrain(folder, seed, args.rerank, args.retrain_epochs)}
            accs.append(result["test_acc"])
            print(json.dumps(result), flush=True)
    if len(accs) > 1:
        print(json.dumps({"test_acc_mean": statistics.mean(accs), "test_acc_sd": statistics.stdev(accs),
                          "test_acc_min": min(accs), "test_acc_max": max(accs)}), flush=True)


if __name__ == "__main__":
    main()
