"""Multi-fidelity: successive halving over training epochs, asynchronous (ASHA's stopping rule).

A child trains epoch by epoch; at each *rung* (``min_epochs``, ``min_epochs * eta``,
``min_epochs * eta^2``, ... below the full ``epochs``) it compares its validation accuracy with
every value recorded at that rung so far and goes on only if it is among the best
``max(1, n // eta)`` of those ``n`` values; otherwise it stops and its trial is PRUNED. No
child waits for others (Li et al.'s ASHA, in the stopping form Optuna's pruner uses), so it
works with any number of workers. ``brackets > 1`` gives Hyperband's hedge: trial ``k`` uses
bracket ``k mod brackets``, whose first rung is ``min_epochs * eta^bracket``, so some children
are never judged on very few epochs.

The rung values travel to the worker with each task (the driver collects them from finished
trials), so the decision needs nothing shared between processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple


def rungs(min_epochs: int, max_epochs: int, eta: int) -> List[int]:
    """Epochs at which a child may be stopped: min_epochs * eta^k below max_epochs."""
    out, r = [], min_epochs
    while r < max_epochs:
        out.append(r)
        r *= eta
    return out


def keep_going(value: float, recorded: Sequence[float], eta: int) -> bool:
    """ASHA's rule: among the values at this rung (``recorded`` plus this one), is ``value``
    within the best max(1, n // eta)?"""
    values = sorted([*recorded, value], reverse=True)
    k = max(1, len(values) // eta)
    return value >= values[k - 1]


@dataclass
class Pruning:
    """Settings of successive halving for one search (``[training] pruning`` as a table)."""

    eta: int = 3
    min_epochs: int = 1
    brackets: int = 1

    def check(self, max_epochs: int) -> None:
        for name in ("eta", "min_epochs", "brackets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "eta" else 1):
                raise ValueError(f"pruning: {name} must be an integer of at least {2 if name == 'eta' else 1}, "
                                 f"got {value!r}")
        if not rungs(self.first_rung(self.brackets - 1), max_epochs, self.eta):
            raise ValueError(f"pruning: with min_epochs {self.min_epochs}, eta {self.eta} and {self.brackets} "
                             f"brackets some bracket has no rung below the {max_epochs} training epochs")

    def first_rung(self, bracket: int) -> int:
        return self.min_epochs * self.eta ** bracket

    def bracket_of(self, number: int) -> int:
        return number % self.brackets

    def rungs_for(self, number: int, max_epochs: int) -> List[int]:
        return rungs(self.first_rung(self.bracket_of(number)), max_epochs, self.eta)


def rung_values(histories: Sequence[Tuple[int, Sequence[float]]], pruning: Pruning, number: int,
                max_epochs: int) -> Dict[int, List[float]]:
    """What trial ``number`` is compared with: for each rung of its bracket, the validation
    accuracy after that many epochs of every earlier child of the same bracket that got so far
    (pruned ones included), from (trial number, validation history) pairs."""
    bracket = pruning.bracket_of(number)
    out: Dict[int, List[float]] = {epoch: [] for epoch in pruning.rungs_for(number, max_epochs)}
    for other, history in histories:
        if pruning.bracket_of(other) != bracket:
            continue
        for epoch in out:
            if len(history) >= epoch:
                out[epoch].append(float(history[epoch - 1]))
    return out
