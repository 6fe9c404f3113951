"""Optuna's tree-structured Parzen estimator (Bergstra et al. 2011) as a strategy.

Each decision is one categorical parameter of an in-memory study (maximising the reward), driven
through Optuna's ask/tell. TPE models the choices of the best ``gamma`` fraction of trials and of
the rest with Parzen estimators and proposes what maximises their ratio; it is the strong
general-purpose baseline a NAS-specific method should beat. Optuna's own defaults are kept
(in 5.0: multivariate TPE, constant liar for pending trials, 10 random startup trials).

Seeding and resume: before every ask the sampler is replaced (``study.sampler``, public) by one
seeded from the strategy's own generator, whose state the strategy saves. TPE keeps nothing
between asks but its random state (its model is refitted from the study's trials each time), so
the state holds every Optuna trial in order (state, tokens, value) and the generator; loading
replays the trials into a fresh study with ``add_trial``, and the next proposals are exactly
those the saved strategy would have made. No private attribute of Optuna is read.
A repeat of an architecture is proposed and counted like any other query (no de-duplication).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional

from ..spaces.base import InvalidArchitectureError, Tokens
from .base import STRATEGIES, Proposal, Strategy



def _optuna():
    try:
        import optuna
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError("the tpe strategy needs optuna: pip install optuna==5.0.0") from error
    return optuna


@STRATEGIES.register("tpe")
class TPE(Strategy):
    name = "tpe"

    def __init__(self, n_startup_trials: int = 10, n_ei_candidates: int = 24,
                 multivariate: Optional[bool] = None, max_resamples: int = 100):
        super().__init__(n_startup_trials=n_startup_trials, n_ei_candidates=n_ei_candidates,
                         multivariate=multivariate, max_resamples=max_resamples)
        for name, value, low in (("n_startup_trials", n_startup_trials, 0),
                                 ("n_ei_candidates", n_ei_candidates, 1), ("max_resamples", max_resamples, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"tpe: {name} must be an integer >= {low}, got {value!r}")
        if multivariate not in (None, True, False):
            raise ValueError(f"tpe: multivariate must be true, false or unset, got {multivariate!r}")

    def setup(self, space, seed):
        super().setup(space, seed)
        optuna = _optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no log line per trial
        names = [d.name for d in space.decisions]
        if len(set(names)) != len(names):
            raise ValueError(f"tpe: decision names of {space.name!r} must be unique")
        self.distributions = {
            d.name: optuna.distributions.CategoricalDistribution(tuple(range(d.size))) for d in space.decisions}
        self.trials: List[list] = []  # [state, tokens, value] per optuna trial, in number order
        self._new_study()

    def _sampler(self):
        """A TPE sampler seeded from the strategy's generator (saved with its state)."""
        optuna = _optuna()
        s = self._settings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=s["n_startup_trials"], n_ei_candidates=s["n_ei_candidates"],
                multivariate=s["multivariate"], seed=int(self.rng.integers(2 ** 31)))

    def _new_study(self) -> None:
        self.study = _optuna().create_study(direction="maximize")

    def _params(self, tokens: Tokens) -> Dict[str, int]:
        return {d.name: int(t) for d, t in zip(self.space.decisions, tokens)}

    def ask(self) -> Proposal:
        for _ in range(self._settings["max_resamples"]):
            self.study.sampler = self._sampler()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trial = self.study.ask(self.distributions)
            tokens = tuple(int(trial.params[d.name]) for d in self.space.decisions)
            try:
                self.space.validate(tokens)
            except InvalidArchitectureError:  # e.g. NAS-Bench-Graph's all-skip network
                self.study.tell(trial, state=_optuna().trial.TrialState.FAIL)
                self.trials.append(["fail", list(tokens), None])
                continue
            self.trials.append(["running", list(tokens), None])
            return Proposal(tokens, {"optuna_trial": trial.number})
        raise RuntimeError("tpe: the sampler keeps proposing architectures the space rejects")

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        tokens = [int(t) for t in tokens]
        number = info.get("optuna_trial")
        if number is None or not (0 <= number < len(self.trials)) or self.trials[number][0] != "running" \
                or self.trials[number][1] != tokens:
            number = next((i for i, (state, t, _) in enumerate(self.trials) if state == "running" and t == tokens),
                          None)
        if number is None:  # a result for tokens this study never asked: record it as a finished trial
            optuna = _optuna()
            self.study.add_trial(optuna.trial.create_trial(
                params=self._params(tokens), distributions=self.distributions, value=float(reward)))
            self.trials.append(["complete", tokens, float(reward)])
            return
        self.study.tell(number, float(reward))
        self.trials[number] = ["complete", tokens, float(reward)]

    def state_dict(self) -> Dict[str, Any]:
        return {
            **super().state_dict(),
            "trials": [list(t) for t in self.trials],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        optuna = _optuna()
        kinds = {"running": optuna.trial.TrialState.RUNNING, "complete": optuna.trial.TrialState.COMPLETE,
                 "fail": optuna.trial.TrialState.FAIL}
        self._new_study()
        for kind, tokens, value in state["trials"]:
            self.study.add_trial(optuna.trial.create_trial(
                state=kinds[kind], params=self._params(tokens), distributions=self.distributions,
                value=value))
        self.trials = [[kind, list(tokens), value] for kind, tokens, value in state["trials"]]
