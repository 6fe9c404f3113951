"""Optuna's tree-structured Parzen estimator (Bergstra et al. 2011) as a strategy.

Each decision is one categorical parameter of an in-memory study (maximising the reward), driven
through Optuna's ask/tell. TPE models the choices of the best ``gamma`` fraction of trials and of
the rest with Parzen estimators and proposes what maximises their ratio; it is the strong
general-purpose baseline a NAS-specific method should beat. Optuna's own defaults are kept
(in 5.0: multivariate TPE, constant liar for pending trials, 10 random startup trials).

Resume: the state holds every Optuna trial in order (state, tokens, value) and the two random
states of the sampler (TPE's and its startup random sampler's, reached through private attributes
of optuna 5.0.0); loading replays the trials into a fresh study with ``add_trial`` and restores
the random states, so the next proposals are exactly those the saved strategy would have made.
A repeat of an architecture is proposed and counted like any other query (no de-duplication).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional

import numpy as np

from ..spaces.base import InvalidArchitectureError, Tokens
from .base import STRATEGIES, Proposal, Strategy



def _optuna():
    try:
        import optuna
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError("the tpe strategy needs optuna: pip install optuna==5.0.0") from error
    return optuna


def _random_states(sampler) -> List[Any]:
    """The numpy RandomStates that TPESampler draws from (private in optuna 5.0.0)."""
    try:
        return [sampler._rng.rng, sampler._random_sampler._rng.rng]
    except AttributeError as error:
        raise RuntimeError("tpe: this optuna version hides the sampler's random state; "
                           "use optuna==5.0.0 for resumable TPE") from error


def _state_to_plain(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _plain_to_state(plain: list) -> tuple:
    name, keys, pos, has_gauss, cached = plain
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)


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

    def _new_study(self) -> None:
        optuna = _optuna()
        s = self._settings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                n_startup_trials=s["n_startup_trials"], n_ei_candidates=s["n_ei_candidates"],
                multivariate=s["multivariate"], seed=self.seed)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)

    def _params(self, tokens: Tokens) -> Dict[str, int]:
        return {d.name: int(t) for d, t in zip(self.space.decisions, tokens)}

    def ask(self) -> Proposal:
        for _ in range(self._settings["max_resamples"]):
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
            "optuna_rngs": [_state_to_plain(r.get_state()) for r in _random_states(self.study.sampler)],
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
        for rng, plain in zip(_random_states(self.study.sampler), state["optuna_rngs"]):
            rng.set_state(_plain_to_state(plain))
