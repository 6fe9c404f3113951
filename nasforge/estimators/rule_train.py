"""``rule-train``: the estimator of the ``update-rules`` space. It trains the space's fixed child
with the rule the tokens write while the child's convolution and linear weights are quantised in
the forward pass (straight-through), and reports the validation accuracy of the quantised network.

The rule updates the latent (full-precision) conv / linear weights; biases and batch-norm
parameters, which stay in floating point, are trained by Adam at ``other_lr`` whatever the rule,
as Helwegen et al. (2019) train Bop's networks. A rule whose loss or weights stop being finite
fails its trial (``TrialFailed``), never the search; so does, before any training, a rule that
cannot learn (it reads no gradient, or its update is zero).

At 1 or 2 bits one optimiser's validation accuracy moves by several points from one training seed
to the next, more than many rules differ by. ``repeats`` trains the child that many times, with
seeds derived from the trial's, and scores the mean, so a search ranks rules rather than seeds.
The default is 2: on 2-bit MNIST-1D, 700 children scored on two seeds found a rule 7.6 points above
the best baseline on held-out seeds, 1,400 children scored on one seed one 1.5 points below it
(docs/benchmarks-quantised.md).
"""

from __future__ import annotations

import time
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..data.datasets import Dataset, load_dataset, split_validation
from ..objectives.hardware import count_params
from ..quant.fake import quantize_weight, weight_levels
from ..quant.rules import RuleOptimizer
from ..spaces.base import SearchSpace, Tokens
from .base import ESTIMATORS, Estimator, TrialFailed, derived_seed
from .device import resolve_device
from .train import predict

QUANTISED = (nn.Conv1d, nn.Conv2d, nn.Linear)


class _Quantised(nn.Module):
    """Parametrisation: the weight the forward pass sees at ``bits``."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return quantize_weight(w, self.bits)


def quantised_child(space, input_shape, num_classes: int, seed: int) -> Tuple[nn.Module, List[nn.Parameter]]:
    """The space's child built with ``seed``, its conv / linear weights quantised to the space's
    bits: the model and the latent weights the rule updates."""
    child_space, child_tokens = space.child_network(len(input_shape) - 1)
    torch.manual_seed(seed)
    model = child_space.build(child_tokens, input_shape, num_classes)
    weights = []
    for layer in [m for m in model.modules() if isinstance(m, QUANTISED)]:
        if space.weight_bits != 32:
            parametrize.register_parametrization(layer, "weight", _Quantised(space.weight_bits))
            weights.append(layer.parametrizations.weight.original)
        else:
            weights.append(layer.weight)
    return model, weights


def rule_optimizers(model: nn.Module, weights: Sequence[nn.Parameter], space, groups, lr: float,
                    other_lr: float) -> List[torch.optim.Optimizer]:
    """The rule for ``weights`` (with ``w_q`` at the space's bits), Adam for every other parameter."""
    bits, c = space.weight_bits, space.constants
    rule = RuleOptimizer(weights, groups, lr, quantise=lambda w: weight_levels(w, bits),
                         betas=(c["beta1"], c["beta2"]), gamma=c["gamma"], tau=c["tau"], eps=c["eps"])
    ids = {id(w) for w in weights}
    others = [p for p in model.parameters() if id(p) not in ids]
    return [rule] + ([torch.optim.Adam(others, lr=other_lr)] if others else [])


def train_with_rule(model: nn.Module, optimizers, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
                    seed: int, device: torch.device, x_val: np.ndarray, y_val: np.ndarray) -> Tuple[List[float], float]:
    """Train in place: (validation accuracy after each epoch, mean training loss of the last epoch).
    TrialFailed when the loss or a weight is no longer finite."""
    model.to(device)
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    xv = torch.as_tensor(x_val, device=device)
    gen = torch.Generator().manual_seed(seed)
    criterion = nn.CrossEntropyLoss()
    history: List[float] = []
    train_loss = float("nan")
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(xt), generator=gen).to(device)
        losses = []
        for start in range(0, len(xt), batch_size):
            idx = perm[start: start + batch_size]
            if len(idx) < 2:  # batch norm needs two examples
                continue
            loss = criterion(model(xt[idx]), yt[idx])
            if not torch.isfinite(loss):
                raise TrialFailed(f"the update rule made the training loss {float(loss.detach())} in epoch {epoch}")
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()
            losses.append(float(loss.detach()))
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise TrialFailed(f"the update rule made a weight infinite or NaN in epoch {epoch}")
        train_loss = float(np.mean(losses))
        history.append(float((predict(model, xv).argmax(1) == y_val).mean()))
    return history, train_loss


@ESTIMATORS.register("rule-train")
class RuleTrainEstimator(Estimator):
    """Trains the update-rules space's child with each rule; val_acc of the quantised child."""

    name = "rule-train"

    def __init__(self, dataset: str = "mnist1d", epochs: int = 4, batch_size: int = 64, other_lr: float = 1e-3,
                 val_fraction: float = 0.2, split_seed: int = 0, score_epochs: int = 1, repeats: int = 2,
                 device: str = "auto"):
        for key, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2), ("score_epochs", score_epochs, 1),
                                ("repeats", repeats, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer of at least {low}, got {value!r}")
        if not other_lr > 0:
            raise ValueError(f"other_lr must be positive, got {other_lr!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        super().__init__(dataset=dataset, epochs=epochs, batch_size=batch_size, other_lr=other_lr,
                         val_fraction=val_fraction, split_seed=split_seed, score_epochs=score_epochs, repeats=repeats,
                         device=device)
        self.dataset_name, self.epochs, self.batch_size, self.other_lr = dataset, epochs, batch_size, other_lr
        self.val_fraction, self.split_seed, self.score_epochs = val_fraction, split_seed, score_epochs
        self.repeats = repeats
        self.device = resolve_device(device)
        self.data: Optional[Dataset] = None

    def setup(self, space: SearchSpace, data: Optional[Dataset] = None) -> None:
        if not hasattr(space, "rule") or not hasattr(space, "child_network"):
            raise ValueError(f"the rule-train estimator trains update rules (space update-rules), not {space.name}; "
                             "use another estimator for network spaces")
        super().setup(space)
        self.data = data if data is not None else load_dataset(self.dataset_name)
        space.child_network(self.data.dims)  # a child that does not fit the data is refused here
        (self.x_train, self.y_train), (self.x_val, self.y_val) = split_validation(
            self.data.x_train, self.data.y_train, self.val_fraction, self.split_seed)

    def max_epochs(self) -> int:
        return self.epochs

    def produces(self) -> FrozenSet[str]:
        return frozenset({"val_acc", "val_acc_last", "val_acc_history", "train_loss", "params", "weight_bits",
                          "train_seconds", "epochs"} | ({"val_acc_runs"} if self.repeats > 1 else set()))

    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        reason = self.space.cannot_learn(tokens)
        if reason:
            raise TrialFailed(reason)
        groups, lr = self.space.rule(tokens)
        start = time.perf_counter()
        runs = [self._train_once(groups, lr, s) for s in repeat_seeds(seed, self.repeats)]
        histories = np.array([history for history, _, _ in runs])
        scores = [max(history[-self.score_epochs:]) for history in histories]
        _, _, (params, quantised) = runs[0]
        metrics = {"val_acc": float(np.mean(scores)), "val_acc_last": float(histories[:, -1].mean()),
                   "val_acc_history": histories.mean(axis=0).tolist(),
                   "train_loss": float(np.mean([loss for _, loss, _ in runs])), "params": params,
                   "weight_bits": quantised * self.space.weight_bits + (params - quantised) * 32,
                   "train_seconds": time.perf_counter() - start, "epochs": histories.shape[1]}
        if self.repeats > 1:
            metrics["val_acc_runs"] = [float(x) for x in scores]
        return metrics

    def _train_once(self, groups, lr: float, seed: int):
        """(validation history, last epoch's training loss, (parameters, quantised weights))."""
        model, weights = quantised_child(self.space, self.data.input_shape, self.data.num_classes, seed)
        optimizers = rule_optimizers(model, weights, self.space, groups, lr, self.other_lr)
        history, train_loss = train_with_rule(model, optimizers, self.x_train, self.y_train, self.epochs,
                                              self.batch_size, seed, self.device, self.x_val, self.y_val)
        return history, train_loss, (count_params(model), sum(w.numel() for w in weights))


def repeat_seeds(seed: int, repeats: int) -> List[int]:
    """The trial's own seed first (one repeat trains exactly as before), then seeds derived from it."""
    return [seed] + [derived_seed(seed, r) for r in range(1, repeats)]
