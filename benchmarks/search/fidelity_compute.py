"""What a successive-halving search spent against the full search it is compared with, from their stores.

Three measures of compute, each as a ratio to the full search's:

- child-epochs (what the issue counts);
- training FLOPs: each child's forward FLOPs times the epochs it trained (every epoch sees the same
  training split, so samples and the backward pass's factor cancel in the ratio). It weights an
  epoch by the size of the network trained, and does not drift with the machine;
- training seconds: the sum of the children's measured ``train_seconds``.

Then the successive-halving store is replayed with other stopping rules. The controller is rewarded
with the accuracy at the first rung, which every child reaches, so it samples the same children
whatever happens at later rungs: a rule that stops no child later than the recorded run did can be
replayed exactly from the stored validation histories. A replay that would need epochs the store
does not have says so. Given the full search's store twice, every rule replays (every child has all
its epochs), though a pruned search's controller, rewarded at the first rung, would have sampled
other children; ``--etas`` then compares successive halving's eta on the full search's children.
"Keeps the best" says whether the best child that trains to the end is the full search's best
architecture.

    .venv/bin/python benchmarks/search/fidelity_compute.py FULL_STORE HALVING_STORE [--eta 4 --min-epochs 1 --epochs 8]
    .venv/bin/python benchmarks/search/fidelity_compute.py FULL_STORE FULL_STORE --etas 3 4 5 6 7
"""

from __future__ import annotations

import argparse
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from nasforge.estimators.fidelity import keep_going, rungs
from nasforge.store import Store

# number, validation history, FLOPs, seconds per epoch, tokens, validation accuracy (the search's)
Child = Tuple[int, List[float], float, float, Tuple[int, ...], float]
Rule = Callable[[float, Sequence[float], int], bool]


def children(path: str) -> List[Child]:
    """Every child that trained, in trial order."""
    with Store(path, create=False) as store:
        out = []
        for trial in sorted(store.trials(), key=lambda t: t.number):
            m = trial.metrics or {}
            if m.get("val_acc_history") and "flops" in m:
                out.append((trial.number, list(m["val_acc_history"]), float(m["flops"]),
                            float(m["train_seconds"]) / len(m["val_acc_history"]), tuple(trial.tokens),
                            float(m["val_acc"])))
        return out


def spent(trained: Sequence[Tuple[int, Child]]) -> Dict[str, float]:
    """Child-epochs, FLOP-epochs and seconds of (epochs trained, child) pairs."""
    return {"epochs": sum(e for e, _ in trained),
            "flops": sum(e * c[2] for e, c in trained),
            "seconds": sum(e * c[3] for e, c in trained)}


def bootstrap_rule(value: float, recorded: Sequence[float], eta: int) -> bool:
    """Stricter than ASHA's: no child passes a rung before ``eta`` values exist there."""
    values = sorted([*recorded, value], reverse=True)
    k = len(values) // eta
    return k >= 1 and value >= values[k - 1]


def replay(kids: Sequence[Child], rule: Rule, eta: int, stops: Sequence[int],
           epochs: int) -> Tuple[Optional[List[Tuple[int, Child]]], Optional[int]]:
    """(epochs each child would train, child) under ``rule``, or (None, trial) for the first trial
    whose replay needs epochs the store does not hold."""
    recorded: Dict[int, List[float]] = {r: [] for r in stops}
    out = []
    for child in kids:
        history, trained = child[1], epochs
        for r in stops:
            if len(history) < r:
                return None, child[0]
            passed = rule(history[r - 1], recorded[r], eta)
            recorded[r].append(history[r - 1])
            if not passed:
                trained = r
                break
        if trained > len(history):
            return None, child[0]
        out.append((trained, child))
    return out, None


def best_tokens(trained: Sequence[Tuple[int, Child]], epochs: int) -> Tuple[int, ...]:
    """The architecture of the best child that trained to the end."""
    return max((c for e, c in trained if e == epochs), key=lambda c: c[5])[4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("full")
    parser.add_argument("halving")
    parser.add_argument("--eta", type=int, default=4)
    parser.add_argument("--etas", type=int, nargs="*", default=[], help="also replay ASHA's rule with these")
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    everyone = [(len(c[1]), c) for c in children(args.full)]
    full, target = spent(everyone), best_tokens(everyone, args.epochs)
    kids = children(args.halving)
    rows = {}
    if args.halving != args.full:
        rows["as recorded"] = ([(len(c[1]), c) for c in kids], None)
    rules = [(f"ASHA's rule, eta {args.eta}", keep_going, args.eta),
             (f"no pass before eta values, eta {args.eta}", bootstrap_rule, args.eta)]
    rules += [(f"ASHA's rule, eta {eta}", keep_going, eta) for eta in args.etas if eta != args.eta]
    for name, rule, eta in rules:
        stops = rungs(args.min_epochs, args.epochs, eta)
        rows[f"{name}, rungs {stops}"] = replay(kids, rule, eta, stops, args.epochs)
    print(f"full search: {full['epochs']} child-epochs, {full['flops'] / 1e9:.2f} G forward FLOPs per signal x epochs, "
          f"{full['seconds']:.0f} s of training")
    print("| halving | children at full epochs | child-epochs | training FLOPs | training seconds | keeps the best |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (trained, missing) in rows.items():
        if trained is None:
            print(f"| {name} | needs epochs the store lacks (trial {missing}) | | | | |")
            continue
        s = spent(trained)
        complete = sum(e == args.epochs for e, _ in trained)
        print(f"| {name} | {complete} | {s['epochs']} ({s['epochs'] / full['epochs']:.3f}) | "
              f"{s['flops'] / full['flops']:.3f} | {s['seconds'] / full['seconds']:.3f} | "
              f"{'yes' if best_tokens(trained, args.epochs) == target else 'no'} |")


if __name__ == "__main__":
    main()
