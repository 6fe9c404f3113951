"""Issue 17.2's target in one run per seed (see docs/benchmarks-quantised.md for what has been run).

For each search seed on MNIST-1D, an fp32 chain-cnn search and a mixed-precision one
(``space.mixed_precision=true``, reward val_acc with MnasNet's hard factor on weight_bits), each the
default search stopped by SIGTERM after its minutes (it stops cleanly and keeps its trials), or after
``--budget`` trials if that comes first. Two ways to spend the ``--minutes`` of search:

- ``--mode joint``: both searches side by side for ``--minutes``, one torch thread each; the mixed
  one searches architecture and bit widths together, under ``weight_bits <= --limit``.
- ``--mode precision`` (HAQ's setting): the fp32 search alone for half the minutes, then a search of
  the bit widths alone of its best network (``space.architecture``) for the other half, under
  ``weight_bits <= (that network's fp32 weight bits) / --ratio``. With ``--bit-limits ratio uniform-2``
  that half is split into two bit searches, one under that limit and one under the weight bits of
  the network at uniform 2 bits, as HAQ searches once per resource level it compares against: a
  single limit at fp32 / 8 gives the search no reason to look below it, where uniform 2 bits lies.
  With ``--inherit-epochs N`` the fp32 best is first trained once on the search's training split
  (8 epochs, as its children were; the time comes out of the bit-search minutes) and every bit child
  starts from those weights and trains N epochs (``training.init_weights``), as HAQ fine-tunes each
  precision of a trained network instead of training it from scratch.

Then, on the test split: the mixed-precision search's Pareto front of (val_acc, weight_bits)
retrained, against the fp32 search's best retrained at uniform 8, 4 and 2 bits (QAT, activations at
8) and in fp32. Prints, per seed, whether the found front dominates the uniform points and whether a
found network is within 0.5 points of fp32 with at least 8x fewer weight bits.

    python benchmarks/search/mixed_precision_pareto.py --minutes 30 --seeds 0 1 2
    python benchmarks/search/mixed_precision_pareto.py --mode precision --minutes 30 --seeds 0 1 2
    python benchmarks/search/mixed_precision_pareto.py --mode precision --bit-limits ratio uniform-2 --minutes 30
    python benchmarks/search/mixed_precision_pareto.py --mode precision --bit-limits ratio uniform-2 --inherit-epochs 2
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from nasforge.data.datasets import load_dataset
from nasforge.estimators.train import TrainEstimator, TrainRecipe, retrain_and_test
from nasforge.objectives.pareto import pareto_front
from nasforge.quant.metrics import weight_bits
from nasforge.spaces.chain_cnn import ChainCNNSpace


def cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "nasforge", *args], check=True, capture_output=True,
                          text=True).stdout


def mixed_settings(limit: int, architecture=None) -> list:
    """The search flags of a mixed-precision search under ``weight_bits <= limit``, of architecture
    and bits together, or of the bits alone of ``architecture`` (tokens of the plain space)."""
    fixed = [] if architecture is None else ["--set", f"space.architecture={json.dumps(list(architecture))}"]
    return ["--set", "space.mixed_precision=true", *fixed, "--constraint", f"weight_bits<={limit}",
            "--constraint-mode", "mnasnet-hard"]


def searches(runs: dict, seed: int, budget: int, minutes: float) -> dict:
    """Searches of one seed side by side (so they see the same load), each stopped after ``minutes``;
    ``runs`` maps a name to (folder, extra flags). Per search its trial count and exit code."""
    processes = {}
    folders = {name: folder for name, (folder, _) in runs.items()}
    for name, (folder, extra) in runs.items():
        # alone, a search takes the default threads; side by side, one torch thread each: two searches
        # of the default cores // workers threads oversubscribe the two cores (docs/benchmarks-images.md,
        # thread contention); so run, each got 30 children in 30 minutes, where one alone gets about 140 in 15
        threads = ["--threads-per-worker", "1"] if len(runs) > 1 else []
        command = [sys.executable, "-m", "nasforge", "search", "--experiment", str(folder), "--seed", str(seed),
                   "--budget", str(budget), *threads, "--quiet", *extra]
        processes[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + minutes * 60
    for process in processes.values():
        try:
            process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
    out = {}
    for name, process in processes.items():
        _, errors = process.communicate(timeout=600)
        if process.returncode not in (0, 143):  # 143: stopped by the SIGTERM above
            raise SystemExit(f"the {name} search of seed {seed} failed (exit {process.returncode}): {errors.strip()}")
        trials = json.loads(cli("trials", "--experiment", str(folders[name]), "--json"))
        out[name] = {"trials": len(trials), "complete": sum(t["state"] == "COMPLETE" for t in trials),
                     "exit": process.returncode}
    return out


def test_point(space: ChainCNNSpace, tokens, data, epochs: int, bits: int = 32):
    recipe = TrainRecipe(epochs=epochs, quantization="off" if bits == 32 else "qat", weight_bits=bits,
                         activation_bits=32 if bits == 32 else 8)
    model, metrics = retrain_and_test(space, tuple(tokens), data, recipe, seed=0, device="cpu")
    return metrics["test_acc"], weight_bits(model)


def trained_weights(space: ChainCNNSpace, tokens, data, path: Path) -> float:
    """Train ``tokens`` as the search trained its children (the default estimator: its recipe, on
    the search's training split only, so the bit children's validation scores stay fair) and save
    its state dict at ``path``; the seconds it took."""
    start = time.time()
    estimator = TrainEstimator(device="cpu")
    estimator.setup(space, data)
    model, _ = estimator.trained(tuple(tokens), seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return time.time() - start


def bit_limits(names, fp32_bits: int, uniform2_bits: int, ratio: float) -> dict:
    """The weight-bit limit of each bit search, by name: ``ratio`` is the fp32 network's bits / ratio,
    ``uniform-2`` the bits of that network at uniform 2 bits (a size, known before any search)."""
    sizes = {"ratio": int(fp32_bits / ratio), "uniform-2": int(uniform2_bits)}
    return {name: sizes[name] for name in names}


def joint_front(fronts) -> list:
    """The non-dominated trials (highest val_acc, fewest weight_bits) of several searches' fronts."""
    trials = [t for front in fronts for t in front]
    points = [(t["val_acc"], t["weight_bits"]) for t in trials]
    return [trials[i] for i in pareto_front(points, ("maximize", "minimize"))] if trials else []


def dominated(point, front) -> bool:
    return any(a >= point[0] and b <= point[1] and (a, b) != tuple(point) for a, b in front)


def one_seed(root: Path, seed: int, args, data) -> dict:
    fp32, mp = root / f"fp32-{seed}", root / f"mp-{seed}"
    pretrain_seconds = None
    plain = ChainCNNSpace(num_layers=6)
    if args.mode == "joint":
        runs = searches({"fp32": (fp32, []), "mixed": (mp, mixed_settings(args.limit))},
                        seed, args.budget, args.minutes)
        best = json.loads(cli("best", "--experiment", str(fp32), "--json"))[0]
        uniform = {b: test_point(plain, best["tokens"], data, args.epochs, b) for b in (32, 8, 4, 2)}
        mixed = ChainCNNSpace(num_layers=6, mixed_precision=True)
        limit, experiments = args.limit, [mp]
    else:
        runs = searches({"fp32": (fp32, [])}, seed, args.budget, args.minutes / 2)
        best = json.loads(cli("best", "--experiment", str(fp32), "--json"))[0]
        uniform = {b: test_point(plain, best["tokens"], data, args.epochs, b) for b in (32, 8, 4, 2)}
        limits = bit_limits(args.bit_limits, uniform[32][1], uniform[2][1], args.ratio)
        folders = {name: mp if name == "ratio" else root / f"mp-{name}-{seed}" for name in limits}
        minutes, inherit = args.minutes / 2, []
        if args.inherit_epochs:
            weights = root / f"fp32-best-{seed}.pt"
            pretrain_seconds = trained_weights(plain, best["tokens"], data, weights)
            minutes -= pretrain_seconds / 60  # the bit search pays for the weights it starts from
            inherit = ["--set", f"training.init_weights={json.dumps(str(weights.resolve()))}",
                       "--set", f"training.epochs={args.inherit_epochs}"]
        # one after the other, each alone on the machine; each with a seed of its own, since with one
        # seed the later search's first batch repeats the earlier one's children (same controller)
        for index, (name, limit) in enumerate(limits.items()):
            runs.update(searches({f"mixed-{name}": (folders[name], mixed_settings(limit, best["tokens"]) + inherit)},
                                 seed + 1000 * index, args.budget, minutes / len(limits)))
        # one limit is reported as a number, as before there could be several
        limit = limits if len(limits) > 1 else next(iter(limits.values()))
        experiments = list(folders.values())
        mixed = ChainCNNSpace(num_layers=6, mixed_precision=True, architecture=best["tokens"])
    front_trials = joint_front(
        json.loads(cli("pareto", "--experiment", str(folder), "--metrics", "val_acc,weight_bits", "--json"))["front"]
        for folder in experiments)
    found = [test_point(mixed, t["tokens"], data, args.epochs) for t in front_trials]
    fp32_acc, fp32_bits = uniform[32]
    return {
        "mode": args.mode, "limit": limit, "fp32_best": plain.summary(best["tokens"]),
        "inherit_epochs": args.inherit_epochs, "pretrain_seconds": pretrain_seconds,
        "found_summaries": [mixed.summary(t["tokens"]) for t in front_trials],
        "searches": runs, "uniform": uniform, "found": found,
        "found_val": [(t["val_acc"], t["weight_bits"]) for t in front_trials],
        "front_dominates_uniform": all(dominated(uniform[b], found) for b in (8, 4, 2)),
        "within_half_point_8x_fewer_bits": any(a >= fp32_acc - 0.005 and w * 8 <= fp32_bits for a, w in found),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("joint", "precision"), default="joint",
                        help="joint: fp32 and architecture+bits searches side by side; precision: the fp32 search, "
                             "then the bits of its best (HAQ's setting), half the minutes each")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall time of search per seed")
    parser.add_argument("--budget", type=int, default=100_000, help="trials per search at most")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="retrain epochs")
    parser.add_argument("--limit", type=int, default=200_000, help="joint: weight_bits target of MnasNet's factor")
    parser.add_argument("--ratio", type=float, default=8.0,
                        help="precision: weight_bits target = the fp32 best's weight bits / ratio")
    parser.add_argument("--bit-limits", nargs="+", choices=("ratio", "uniform-2"), default=["ratio"],
                        help="precision: one bit search per limit, splitting the bit-search minutes: ratio is the "
                             "fp32 best's weight bits / --ratio, uniform-2 its weight bits at uniform 2 bits")
    parser.add_argument("--inherit-epochs", type=int, default=0,
                        help="precision: bit children start from the fp32 best's weights (trained once on the "
                             "search's training split) and train this many epochs; 0 trains them from scratch")
    parser.add_argument("--out", default="runs/mixed-precision-pareto")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if args.inherit_epochs and args.mode != "precision":
        parser.error("--inherit-epochs needs --mode precision: the bit children inherit the fp32 best's weights")
    data = load_dataset("mnist1d")
    root = Path(args.out)
    results = {}
    for seed in args.seeds:  # written after every seed, so a stopped run keeps the seeds it finished
        results[seed] = one_seed(root, seed, args, data)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
