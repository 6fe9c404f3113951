"""``shared-weights``: ENAS-style evaluation, every child a path through one trained supernet.

ENAS (Pham et al., 2018) alternates two phases: the shared weights omega take SGD steps on training
minibatches, each step on an architecture the controller samples; then the controller is updated by
REINFORCE with rewards measured by the shared weights on validation data. In nasforge's loop
(``ask -> evaluate -> tell``) the estimator owns omega and :meth:`SharedWeightsEstimator.evaluate`
does both halves for the architecture it is given:

1. ``steps`` minibatch steps of omega on this architecture (the omega phase, with the architectures
   arriving in the order the strategy samples them);
2. its accuracy on the validation split with the shared weights (the reward phase; batch norm uses
   the statistics of the validation batch, because running statistics shared by all architectures
   describe none of them).

With REINFORCE's batch of ``m`` children, ``m`` such evaluations make one ENAS round: ``m * steps``
omega steps on controller samples, then one controller update on ``m`` rewards. The rewards of a
batch are measured by weights that moved a little between its children; ENAS's strict alternation
would freeze omega for the reward phase. Any strategy can drive this estimator, not only RL.

The first evaluation first trains omega for ``warmup_steps`` on uniformly sampled architectures (a
common ENAS-style warm start, so that early rewards are not noise). ``params`` and ``flops`` are those
of the stand-alone network. :meth:`state_dict`, :meth:`save` and :meth:`load` carry omega, the
optimiser and the step count, so a resumed search continues with the trained supernet.

**Single-path one-shot mode** (``mode = "single-path"``; what ``auto`` picks for every space but
chain-cnn, e.g. ``nb201-cell``): Guo et al.'s method (2020) instead of ENAS's. The warm-up and the
``steps`` of every evaluation train the supernet on uniformly sampled paths, never on the
architecture being scored (``steps = 0``: trained once by the warm-up, then frozen, as in the
paper); the reward is the path's validation accuracy with the inherited weights after its
batch-norm statistics are recomputed on ``calibration_batches`` fixed training batches
(:mod:`.single_path`, which also says how a space joins).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, FrozenSet, Optional, Tuple

import torch
from torch import nn

from ..data.datasets import Dataset, load_dataset, split_validation
from ..objectives.hardware import count_flops, count_params
from ..spaces.base import SearchSpace, Tokens
from ..spaces.chain_cnn import ChainCNNSpace
from .base import ESTIMATORS, Estimator, TrialFailed
from .single_path import SUPERNETS, recalibrate, supernet_class
from .supernet import ChainSuperNet, random_tokens, supernet_parameters
from .device import resolve_device

OPTIMIZERS = ("adamw", "sgd")
MODES = ("auto", "enas", "single-path")
#: Settings added after checkpoints were first written: an older checkpoint had these values.
_LATER_SETTINGS = {"mode": "auto", "calibration_batches": 4}


@ESTIMATORS.register("shared-weights")
class SharedWeightsEstimator(Estimator):
    """Trains the shared weights a few steps per architecture; the reward is read from them."""

    name = "shared-weights"
    # The supernet lives in this process and every evaluation changes it: run evaluations one at a
    # time, in the process that owns the estimator (a worker pool would train diverging copies).
    in_process_only = True

    def __init__(self, dataset: str = "mnist1d", val_fraction: float = 0.2, split_seed: int = 0,
                 steps: int = 10, warmup_steps: int = 500, batch_size: int = 64, eval_size: int = 0,
                 optimizer: str = "adamw", learning_rate: float = 2e-3, weight_decay: float = 1e-4,
                 grad_clip: float = 5.0, seed: int = 0, max_params: int = 5_000_000,
                 max_supernet_params: int = 50_000_000, device: str = "auto", mode: str = "auto",
                 calibration_batches: int = 4):
        super().__init__(dataset=dataset, val_fraction=val_fraction, split_seed=split_seed, steps=steps,
                         warmup_steps=warmup_steps, batch_size=batch_size, eval_size=eval_size,
                         optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
                         grad_clip=grad_clip, seed=seed, max_params=max_params,
                         max_supernet_params=max_supernet_params, device=device, mode=mode,
                         calibration_batches=calibration_batches)
        checks = [
            (0 < val_fraction < 1, f"val_fraction must be in (0, 1), got {val_fraction}"),
            (isinstance(steps, int) and steps >= 0, f"steps must be a non-negative integer, got {steps!r}"),
            (isinstance(warmup_steps, int) and warmup_steps >= 0,
             f"warmup_steps must be a non-negative integer, got {warmup_steps!r}"),
            (isinstance(batch_size, int) and batch_size >= 2, f"batch_size must be at least 2, got {batch_size!r}"),
            (isinstance(eval_size, int) and eval_size >= 0,
             f"eval_size must be 0 (the whole validation split) or a positive number, got {eval_size!r}"),
            (optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}"),
            (learning_rate > 0, f"learning_rate must be positive, got {learning_rate}"),
            (weight_decay >= 0, f"weight_decay must be non-negative, got {weight_decay}"),
            (grad_clip >= 0, f"grad_clip must be non-negative (0 turns it off), got {grad_clip}"),
            (mode in MODES, f"mode must be one of {MODES}, got {mode!r}"),
            (isinstance(calibration_batches, int) and calibration_batches >= 1,
             f"calibration_batches must be a positive integer, got {calibration_batches!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"shared-weights: {message}")
        self.dataset_name = dataset
        self.device = resolve_device(device)
        self.data: Optional[Dataset] = None
        self.steps_done = 0
        self.last_loss = float("nan")
        self._metrics_cache: Dict[Tokens, Tuple[int, int]] = {}

    # ---- binding --------------------------------------------------------------------------------
    def resolve_mode(self, space: SearchSpace) -> str:
        """``enas`` for chain-cnn, ``single-path`` for the spaces with such a supernet; refuses the rest."""
        chain, mode = isinstance(space, ChainCNNSpace), self._settings["mode"]
        if mode == "auto":
            mode = "enas" if chain else "single-path"
        if chain != (mode == "enas"):
            raise ValueError(f"shared-weights: mode {mode!r} does not cover the {space.name!r} space: chain-cnn "
                             f"is trained ENAS-style (mode 'enas'), the other spaces single-path "
                             f"({', '.join(sorted(SUPERNETS))})")
        if mode == "single-path":
            supernet_class(space)  # raises, naming the spaces that have a supernet
        return mode

    def setup(self, space: SearchSpace, data: Optional[Dataset] = None) -> None:
        self.mode = self.resolve_mode(space)
        super().setup(space)
        s = self._settings
        self.data = data if data is not None else load_dataset(self.dataset_name)
        dims = getattr(space, "dims", None)
        if dims is not None and dims != self.data.dims:
            raise ValueError(f"shared-weights: space is {dims}-D but dataset {self.data.name} has "
                             f"{self.data.dims}-D inputs of shape {self.data.input_shape}")
        shape, classes = self.data.input_shape, self.data.num_classes
        size = supernet_parameters(space, shape, classes) if self.mode == "enas" else 0
        if size <= s["max_supernet_params"]:
            torch.manual_seed(s["seed"])  # supernet initialisation only
            net = (ChainSuperNet if self.mode == "enas" else supernet_class(space))(space, shape, classes)
            size = sum(p.numel() for p in net.parameters())
        if size > s["max_supernet_params"]:
            raise ValueError(f"shared-weights: the supernet of this space would hold {size:,} parameters, over "
                             f"max_supernet_params={s['max_supernet_params']:,}; use a smaller space or raise it")
        (xt, yt), (xv, yv) = split_validation(self.data.x_train, self.data.y_train, s["val_fraction"],
                                              s["split_seed"])
        dev = self.device
        self.x_train, self.y_train = torch.as_tensor(xt, device=dev), torch.as_tensor(yt, device=dev)
        self.x_val, self.y_val = torch.as_tensor(xv, device=dev), torch.as_tensor(yv, device=dev)
        self.supernet = net.to(dev)
        # Single-path: the same training batches recalibrate every path's batch norm (fewer if the split is small).
        order = torch.randperm(len(yt), generator=torch.Generator().manual_seed(s["seed"])).to(dev)
        count = s["calibration_batches"] * s["batch_size"]
        self.calibration = list(self.x_train[order[:count]].split(s["batch_size"]))
        # Listed once: walking the supernet's modules for them at every step cost 7% of a search.
        self.params = list(self.supernet.parameters())
        # foreach: one multi-tensor update instead of a Python loop over the tensors (bit-identical)
        if s["optimizer"] == "adamw":
            self.optimizer = torch.optim.AdamW(self.params, lr=s["learning_rate"], weight_decay=s["weight_decay"],
                                               foreach=True)
        else:
            self.optimizer = torch.optim.SGD(self.params, lr=s["learning_rate"], momentum=0.9, nesterov=True,
                                             weight_decay=s["weight_decay"], foreach=True)
        self.steps_done = 0
        self.last_loss = float("nan")
        self._metrics_cache = {}

    # ---- the two ENAS phases --------------------------------------------------------------------
    def train_steps(self, tokens: Tokens, steps: int, generator: torch.Generator) -> float:
        """``steps`` SGD steps of the shared weights on ``tokens``; returns the last loss."""
        s, net = self._settings, self.supernet
        n, bs = len(self.x_train), s["batch_size"]
        if not net.training:  # switching walks every module of the supernet: only when needed
            net.train()
        loss = torch.tensor(float("nan"))
        perm = torch.randperm(n, generator=generator).to(self.device)
        for step in range(steps):
            start = (step * bs) % n
            if start + bs > n:  # a new pass over the data
                perm, start = torch.randperm(n, generator=generator).to(self.device), 0
            idx = perm[start : start + bs]
            loss = nn.functional.cross_entropy(net(self.x_train[idx], tokens), self.y_train[idx])
            if not torch.isfinite(loss):
                raise TrialFailed(f"shared-weights training loss became {float(loss)} at step {step + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if s["grad_clip"] > 0:
                nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None], s["grad_clip"])
            self.optimizer.step()
            self.steps_done += 1
        if steps:
            self.last_loss = float(loss.detach())
        return float(loss.detach())

    @torch.no_grad()
    def validation_accuracy(self, tokens: Tokens, generator: Optional[torch.Generator] = None,
                            size: Optional[int] = None) -> float:
        """Accuracy with the shared weights on ``size`` validation signals (default ``eval_size``; 0: all)."""
        x, y = self.x_val, self.y_val
        size = self._settings["eval_size"] if size is None else size
        if 0 < size < len(y):
            idx = torch.randperm(len(y), generator=generator)[:size].to(self.device)
            x, y = x[idx], y[idx]
        if self.mode == "single-path":  # the path's own batch-norm statistics, then eval mode
            recalibrate(self.supernet, tokens, self.calibration)
        if self.supernet.training:
            self.supernet.eval()
        scores = self.supernet(x, tokens)
        return float((scores.argmax(1) == y).float().mean())

    def uniform_steps(self, steps: int, gen: torch.Generator) -> None:
        """``steps`` steps of omega, each on its own uniformly sampled architecture."""
        for _ in range(steps):
            self.train_steps(random_tokens(self.space, gen), 1, gen)

    def warm_up(self) -> None:
        """Train omega on uniformly sampled architectures (once, before the first reward)."""
        self.uniform_steps(self._settings["warmup_steps"], torch.Generator().manual_seed(self._settings["seed"]))

    def stand_alone(self, tokens: Tokens) -> Tuple[int, int]:
        """Parameters and FLOPs of the stand-alone network (cached: they depend on tokens alone)."""
        if tokens not in self._metrics_cache:
            model = self.space.build(tokens, self.data.input_shape, self.data.num_classes)
            self._metrics_cache[tokens] = (count_params(model), count_flops(model, self.data.input_shape))
        return self._metrics_cache[tokens]

    def produces(self) -> FrozenSet[str]:
        return frozenset({"val_acc", "params", "flops", "train_seconds", "train_loss", "shared_steps",
                          "warmup_steps", "supernet_steps", "epochs"})

    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        if self.data is None:
            raise RuntimeError("shared-weights: call setup(space) before evaluate")
        tokens = self.space.validate(tokens)
        s = self._settings
        params, flops = self.stand_alone(tokens)
        if params > s["max_params"]:
            raise TrialFailed(f"{params:,} parameters exceed the limit of {s['max_params']:,}")
        start = time.perf_counter()
        warmup = 0
        if self.steps_done == 0 and s["warmup_steps"]:
            self.warm_up()
            warmup = s["warmup_steps"]
        gen = torch.Generator().manual_seed(int(seed))
        if self.mode == "enas":
            loss = self.train_steps(tokens, s["steps"], gen)
        else:  # single path: the shared weights never train on the architecture being scored
            self.uniform_steps(s["steps"], gen)
            loss = self.last_loss
        val_acc = self.validation_accuracy(tokens, gen)
        seconds = time.perf_counter() - start
        samples = (s["steps"] + warmup) * s["batch_size"]
        return {
            "val_acc": val_acc,
            "params": params,
            "flops": flops,
            "train_seconds": seconds,
            "train_loss": loss,
            "shared_steps": s["steps"] + warmup,
            "warmup_steps": warmup,
            "supernet_steps": self.steps_done,
            # compute in child-epochs: training samples seen / training-split size
            "epochs": samples / len(self.y_train),
        }

    # ---- resume ---------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Everything a resumed search needs: omega, the optimiser, the step count, the settings."""
        return {"settings": self.settings(), "space": self.space.config(), "steps_done": self.steps_done,
                "last_loss": self.last_loss,
                "supernet": {k: v.detach().cpu().clone() for k, v in self.supernet.state_dict().items()},
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        mine, saved = self.settings(), {**_LATER_SETTINGS, **state["settings"]}
        diff = [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in mine.items()
                if k != "device" and saved.get(k) != v]
        if state["space"] != self.space.config():
            diff.append(f"space: saved {state['space']}, now {self.space.config()}")
        if diff:
            raise ValueError("shared-weights: the saved supernet was made with other settings: " + "; ".join(diff))
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps_done = int(state["steps_done"])
        self.last_loss = float(state.get("last_loss", float("nan")))

    def save(self, path: str | Path) -> None:
        """Write the state atomically (a crash mid-write leaves the previous file intact)."""
        path = Path(path)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(Path(path), map_location=self.device, weights_only=True))
