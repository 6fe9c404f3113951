"""Child training: build the network from tokens, train it, measure it on held-out data.

During a search the reward comes from a validation split carved out of the training data; the
test split is only touched by :func:`retrain_and_test`, after the search.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..data.datasets import Dataset, load_dataset, split_validation
from ..objectives.metrics import classification_report, count_flops, count_params
from ..spaces.base import SearchSpace, Tokens
from .base import ESTIMATORS, Estimator, TrialFailed

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass
class TrainRecipe:
    """How a child is trained. Plain values, stored with every experiment."""

    epochs: int = 8
    batch_size: int = 64
    optimizer: str = "adamw"
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    schedule: str = "onecycle"

    def check(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch size must be at least 2, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be positive, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight decay must be non-negative, got {self.weight_decay}")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    params = model.parameters()
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.learning_rate, momentum=0.9, nesterov=True,
                           weight_decay=recipe.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, recipe: TrainRecipe, total_steps: int):
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.learning_rate, total_steps=total_steps)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return None


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    outs = [model(x[i : i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs).numpy()


def train_network(model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, recipe: TrainRecipe,
                  seed: int, device: torch.device, x_val: Optional[np.ndarray] = None,
                  y_val: Optional[np.ndarray] = None) -> List[float]:
    """Train in place; return validation accuracy after each epoch (empty without validation)."""
    recipe.check()
    model.to(device)
    xt = torch.as_tensor(x_train, device=device)
    yt = torch.as_tensor(y_train, device=device)
    xv = torch.as_tensor(x_val, device=device) if x_val is not None else None
    n = len(xt)
    batches = n // recipe.batch_size + (1 if n % recipe.batch_size >= 2 else 0)
    opt = _optimizer(model, recipe)
    sched = _scheduler(opt, recipe, recipe.epochs * batches)
    gen = torch.Generator().manual_seed(seed)
    history: List[float] = []
    for epoch in range(recipe.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        for b in range(batches):
            idx = perm[b * recipe.batch_size : (b + 1) * recipe.batch_size]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            if not torch.isfinite(loss):
                raise TrialFailed(f"training loss became {float(loss)} in epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        if xv is not None:
            scores = predict(model, xv)
            history.append(float((scores.argmax(1) == y_val).mean()))
    return history


@ESTIMATORS.register("train")
class TrainEstimator(Estimator):
    """Trains each child on the training split; reward metric from the validation split."""

    name = "train"

    def __init__(self, dataset: str = "mnist1d", val_fraction: float = 0.2, split_seed: int = 0,
                 score_epochs: int = 5, max_params: int = 5_000_000, device: str = "auto",
                 **recipe: Any):
        self.recipe = TrainRecipe(**recipe)
        self.recipe.check()
        super().__init__(dataset=dataset, val_fraction=val_fraction, split_seed=split_seed,
                         score_epochs=score_epochs, max_params=max_params, device=device,
                         **asdict(self.recipe))
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if score_epochs < 1:
            raise ValueError(f"score_epochs must be at least 1, got {score_epochs}")
        self.dataset_name = dataset
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.score_epochs = score_epochs
        self.max_params = max_params
        self.device = resolve_device(device)
        self.data: Optional[Dataset] = None

    def setup(self, space: SearchSpace, data: Optional[Dataset] = None) -> None:
        super().setup(space)
        self.data = data if data is not None else load_dataset(self.dataset_name)
        dims = getattr(space, "dims", None)
        if dims is not None and dims != self.data.dims:
            raise ValueError(
                f"space {space.name} is {dims}-D but dataset {self.data.name} has {self.data.dims}-D "
                f"inputs of shape {self.data.input_shape}; set the space's dims to {self.data.dims}"
            )
        (self.x_train, self.y_train), (self.x_val, self.y_val) = split_validation(
            self.data.x_train, self.data.y_train, self.val_fraction, self.split_seed)

    def build(self, tokens: Tokens) -> nn.Module:
        return self.space.build(tokens, self.data.input_shape, self.data.num_classes)

    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        torch.manual_seed(seed)
        model = self.build(tokens)
        params = count_params(model)
        if params > self.max_params:
            raise TrialFailed(f"{params:,} parameters exceed the limit of {self.max_params:,}")
        flops = count_flops(model, self.data.input_shape)
        start = time.perf_counter()
        history = train_network(model, self.x_train, self.y_train, self.recipe, seed, self.device,
                                self.x_val, self.y_val)
        seconds = time.perf_counter() - start
        return {
            "val_acc": max(history[-self.score_epochs :]),
            "val_acc_last": history[-1],
            "val_acc_history": history,
            "params": params,
            "flops": flops,
            "train_seconds": seconds,
            "epochs": self.recipe.epochs,
        }


def retrain_and_test(space: SearchSpace, tokens: Tokens, data: Dataset, recipe: TrainRecipe, seed: int,
                     device: str = "auto") -> Tuple[nn.Module, Dict[str, Any]]:
    """Train from scratch on train+validation and report test metrics (the final evaluation)."""
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = space.build(tokens, data.input_shape, data.num_classes)
    start = time.perf_counter()
    train_network(model, data.x_train, data.y_train, recipe, seed, dev)
    seconds = time.perf_counter() - start
    scores = predict(model, torch.as_tensor(data.x_test, device=dev))
    report = classification_report(scores, data.y_test)
    model.cpu().eval()
    return model, {
        "test_acc": report["accuracy"],
        "test_top3_acc": report["top3_accuracy"],
        "test_average_precision": report["average_precision"],
        "params": count_params(model),
        "flops": count_flops(model, data.input_shape),
        "train_seconds": seconds,
        "epochs": recipe.epochs,
        "seed": seed,
    }
