"""Training the level-move policy (``level_moves.py``) on its non-differentiable reward, the
quantised child's validation accuracy after a short training, over many short trainings (issue
17.3b). Two estimators of the policy's gradient, run on the same episodes so they can be compared:

* REINFORCE (Williams 1992) with the batch's mean reward as baseline: a batch of episodes shares
  one training task (the child's initial weights and the data order), so the baseline removes the
  task's luck, and the actions' log-probability gradients carry the credit.
* Evolution strategies in the policy's parameters (Salimans et al. 2017): antithetic pairs on one
  task each, rewards turned into centred ranks. Its noise does not grow with the number of actions
  (weights x steps), which REINFORCE's does.

The child, data split, batch size and the Adam that trains the biases and batch norm are those of
the ``rule-train`` estimator, so an episode is the same training a searched update rule gets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from ..data.datasets import Dataset, split_validation
from ..estimators.rule_train import quantised_child, rule_optimizers, train_with_rule
from ..estimators.device import resolve_device
from ..estimators.train import predict
from ..spaces.update_rules import UpdateRuleSpace
from .level_moves import LevelMoveOptimizer, MovePolicy


@dataclass
class Task:
    """What an episode trains: the data (80/20 split of the training set), the child, how long, the
    optimiser's ``drive_rate`` (how fast the drive feature follows Adam's direction), whether it
    is ``greedy`` (most likely action; for evolution strategies, not REINFORCE), and the
    ``device`` (``training.device``'s values; the CPU by default: a child of a few thousand weights
    trains faster on one CPU thread than through GPU kernel launches)."""

    data: Dataset
    bits: int = 1
    epochs: int = 4
    batch_size: int = 64
    other_lr: float = 1e-3
    child_layers: int = 3
    drive_rate: float = 0.2
    greedy: bool = False
    device: str = "cpu"

    def __post_init__(self):
        self.torch_device = resolve_device(self.device)
        (self.x_train, self.y_train), (self.x_val, self.y_val) = split_validation(
            self.data.x_train, self.data.y_train, 0.2, 0)
        # a full-precision child: the level-move optimiser quantises its weights itself
        self.space = UpdateRuleSpace(weight_bits=32, child_layers=self.child_layers)


def run_episode(policy: MovePolicy, task: Task, seed: int, sample_seed: int, record: bool = False,
                test: bool = False) -> Dict:
    """Train the child of ``seed`` with the policy; its quantised validation accuracy (the reward),
    the score-function sums when ``record``, and the test accuracy when ``test``."""
    model, weights = quantised_child(task.space, task.data.input_shape, task.data.num_classes, seed)
    model.to(task.torch_device)  # before the optimiser snaps the weights: its state lives beside them
    generator = torch.Generator().manual_seed(sample_seed)
    mover = LevelMoveOptimizer(weights, policy, task.bits, drive_rate=task.drive_rate, generator=generator,
                               record=record, greedy=task.greedy)
    ids = {id(w) for w in weights}
    adam = torch.optim.Adam([p for p in model.parameters() if id(p) not in ids], lr=task.other_lr)
    history, _ = train_with_rule(model, [mover, adam], task.x_train, task.y_train, task.epochs, task.batch_size,
                                 seed, task.torch_device, task.x_val, task.y_val)
    out = {"reward": history[-1], "score": mover.score, "moves": mover.moves}
    if test:
        out["test_acc"] = _test_accuracy(model, task)
    return out


def _test_accuracy(model, task: Task) -> float:
    x = torch.as_tensor(task.data.x_test, device=task.torch_device)
    return float((predict(model, x).argmax(1) == task.data.y_test).mean())


def reinforce(policy: MovePolicy, task: Task, iterations: int, episodes: int = 8, lr: float = 0.01,
              first_seed: int = 1000, log: Optional[Callable[[Dict], None]] = None,
              episode: Callable[..., Dict] = run_episode) -> List[Dict]:
    """REINFORCE with a per-task baseline; returns one record per iteration. ``episode`` is
    :func:`run_episode` or a stand-in with its signature and keys (tests use a bandit)."""
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    params = list(policy.parameters())
    history = []
    for it in range(iterations):
        start = time.perf_counter()
        runs = [episode(policy, task, first_seed + it, 7919 * (first_seed + it) + j, record=True)
                for j in range(episodes)]
        rewards = torch.tensor([r["reward"] for r in runs])
        advantage = (rewards - rewards.mean()) / (rewards.std() + 1e-3)
        for k, p in enumerate(params):
            p.grad = -sum(float(a) * r["score"][k] for a, r in zip(advantage, runs)) / episodes
        optimizer.step()
        history.append(_record(it, rewards, time.perf_counter() - start, runs))
        if log:
            log(history[-1])
    return history


def evolution_strategies(policy: MovePolicy, task: Task, iterations: int, pairs: int = 4, sigma: float = 0.05,
                         lr: float = 0.02, first_seed: int = 1000, log: Optional[Callable[[Dict], None]] = None,
                         episode: Callable[..., Dict] = run_episode) -> List[Dict]:
    """Antithetic evolution strategies with centred ranks; one record per iteration."""
    theta = torch.nn.utils.parameters_to_vector(policy.parameters()).detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=lr)
    noise = torch.Generator().manual_seed(first_seed)
    history = []
    for it in range(iterations):
        start = time.perf_counter()
        eps = torch.randn(pairs, theta.numel(), generator=noise)
        runs = []
        for i in range(pairs):
            for sign in (1.0, -1.0):
                torch.nn.utils.vector_to_parameters(theta.detach() + sign * sigma * eps[i], policy.parameters())
                runs.append(episode(policy, task, first_seed + it, 7919 * (first_seed + it) + i))
        rewards = torch.tensor([r["reward"] for r in runs])
        ranks = torch.from_numpy(np.argsort(np.argsort(rewards.numpy()))).float()
        centred = ranks / (len(runs) - 1) - 0.5
        theta.grad = -((centred[0::2] - centred[1::2]) @ eps) / (2 * pairs * sigma)
        optimizer.step()
        torch.nn.utils.vector_to_parameters(theta.detach(), policy.parameters())
        history.append(_record(it, rewards, time.perf_counter() - start, runs))
        if log:
            log(history[-1])
    return history


def _record(it: int, rewards: torch.Tensor, seconds: float, runs: List[Dict]) -> Dict:
    return {"iteration": it, "mean_reward": float(rewards.mean()), "max_reward": float(rewards.max()),
            "moves": float(np.mean([r["moves"] for r in runs])), "seconds": seconds}


def evaluate(policy: MovePolicy, task: Task, seeds: List[int]) -> List[Dict]:
    """The frozen policy on ``seeds`` (children the training did not see): validation and test accuracy."""
    runs = [run_episode(policy, task, s, s, test=True) for s in seeds]
    return [{"seed": s, "val_acc": r["reward"], "test_acc": r["test_acc"], "moves": r["moves"]}
            for s, r in zip(seeds, runs)]


def run_rule(task: Task, groups, lr: float, seed: int, constants: Optional[Dict[str, float]] = None) -> Dict:
    """The update rule ``groups`` (a reference rule of ``update_rules.REFERENCE_RULES``, or a
    searched one with its space ``constants``) on straight-through latent weights at the task's
    bits, on the same child, split and seed as an episode."""
    space = UpdateRuleSpace(weight_bits=task.bits, child_layers=task.child_layers, **(constants or {}))
    model, weights = quantised_child(space, task.data.input_shape, task.data.num_classes, seed)
    optimizers = rule_optimizers(model, weights, space, groups, lr, task.other_lr)
    history, _ = train_with_rule(model, optimizers, task.x_train, task.y_train, task.epochs, task.batch_size,
                                 seed, task.torch_device, task.x_val, task.y_val)
    return {"seed": seed, "val_acc": history[-1], "test_acc": _test_accuracy(model, task)}
