"""What every estimator is: something that turns an architecture into measured metrics.

Training a child, looking it up in a table, scoring it with a proxy or a predictor all fit here.
An estimator never knows which strategy asked. Accuracies are fractions in [0, 1].

This file is the whole contract with the search loop: besides ``setup`` / ``evaluate`` /
``produces``, the class attributes and hooks of :class:`Estimator` below say what an estimator
may offer (where it must run, successive halving, a checkpoint); their defaults are what an
estimator that says nothing gets, so a plugin overrides only what it offers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, FrozenSet, Optional

import numpy as np

from .. import registry
from ..registry import Registry
from ..spaces.base import SearchSpace, Tokens
from .fidelity import Pruning


def derived_seed(seed: int, index: int) -> int:
    """A seed of its own for the ``index``-th use of ``seed``: each trial of a search (the loop's
    ``trial_seed``), each repeated training of one trial (``rule-train``)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class TrialFailed(Exception):
    """An architecture that could not be evaluated (NaN loss, too large, ...): fails its trial only."""


@dataclass(frozen=True)
class FidelityMetrics:
    """The metric keys through which an estimator that stops children early (``pruning``) tells
    the search what happened; the search reads no other names."""

    metric: str = "val_acc"  # the objective's metric, at the fidelity the child reached
    history: str = "val_acc_history"  # its value after each epoch: later children's rungs compare with it
    promised: str = "val_acc_promised"  # its value at the fidelity every child of the bracket reaches:
    # the strategy is rewarded with this in place of ``metric``, so that pruned and finished children compare
    pruned_at: str = "pruned_at"  # present when the child was stopped (the epoch): the trial is PRUNED


class Estimator(ABC):
    name = "estimator"
    #: Evaluations change state this object holds (shared weights): they run one at a time in
    #: the search's own process (executor ``inline``; ``auto`` picks it), never in workers.
    in_process_only: ClassVar[bool] = False
    #: Successive halving over epochs (``fidelity.Pruning``), or None. With it the search sends
    #: each task the values of earlier children at its rungs (``context["rungs"]``), and reads
    #: ``fidelity_metrics`` from the metrics; :meth:`max_epochs` is then the full fidelity.
    pruning: Optional[Pruning] = None
    fidelity_metrics: ClassVar[FidelityMetrics] = FidelityMetrics()

    def __init__(self, **settings: Any):
        self._settings = dict(settings)
        self.context: Dict[str, Any] = {}  # what the search tells about the trial at hand (set per task)

    def settings(self) -> Dict[str, Any]:
        return dict(self._settings)

    def setup(self, space: SearchSpace, data: Any = None) -> None:
        """Bind the space (and the dataset, for estimators that use one); raise ValueError if
        this estimator cannot evaluate the space."""
        self.space = space
        self.data = data

    @abstractmethod
    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        """Metrics of one architecture; raise TrialFailed for a bad architecture."""

    def warm_up(self) -> None:
        """Pay a process's one-off costs before its first timed trial (a worker calls this before it
        reports ready), so that a trial timeout measures the trial alone. Nothing by default; the
        estimators that count FLOPs pay for torch's flop counter here
        (``objectives.hardware.prepare_flop_counter``)."""

    def produces(self) -> Optional[FrozenSet[str]]:
        """The names of the metrics :meth:`evaluate` returns (after :meth:`setup`), so that a
        search refuses an objective it could never compute before any trial runs. None: not
        known in advance (an estimator that does not say is not checked)."""
        return None

    def max_epochs(self) -> int:
        """The epochs a child that is never stopped trains (the full fidelity of ``pruning``);
        0 for an estimator that does not train by epochs."""
        return 0

    # ---- checkpoint hooks: an estimator that learns across evaluations (shared weights) ----------
    def save(self, path: Path) -> None:
        """Write what evaluations have learned to ``path``; called after every trial when the
        estimator evaluates in the search's process. Nothing to save by default."""

    def load(self, path: Path) -> None:
        """Restore what :meth:`save` wrote; called when a search resumes and ``path`` exists."""


ESTIMATORS: Registry[Estimator] = registry.ESTIMATORS  # declared in registry.py, light enough for --help


def create_estimator(name: str, **settings: Any) -> Estimator:
    return ESTIMATORS.create(name, **settings)
