"""Child training: build the network from tokens, train it, measure it on held-out data.

During a search the reward comes from a validation split carved out of the training data; the
test split is only touched by :func:`retrain_and_test`, after the search.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..config import RETRAIN_EPOCHS, RETRAIN_LABEL_SMOOTHING, ConfigError
from ..data.datasets import Dataset, load_dataset, split_validation
from ..objectives.classification import classification_report
from ..objectives.hardware import count_flops, count_params, prepare_flop_counter
from ..quant import training as quant
from ..quant.metrics import quant_metrics
from ..spaces.base import SearchSpace, Tokens
from .augment import check_image_settings, mixup, random_crop, random_flip, random_shift
from .base import ESTIMATORS, Estimator, TrialFailed
from .device import resolve_device
from .fidelity import Pruning, keep_going
from .inherit import inherit, read_weights
from .probe import LATENCY_METRICS, MEASURABLE, HardwareProbe  # noqa: F401 (MEASURABLE: read from here)

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
# mixed precision of the training forward pass (torch.autocast): the dtype its matrix products and
# convolutions run in; the weights, the optimiser and the loss stay float32
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainRecipe:
    """How a child is trained. Plain values, stored with every experiment."""

    epochs: int = 8
    batch_size: int = 64
    optimizer: str = "adamw"
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    schedule: str = "onecycle"
    shift: int = 0  # augmentation: random circular shift of up to this many samples/pixels per axis
    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(alpha, alpha) of mixup; 0 is off
    crop_padding: int = 0  # images: random crop of the image's size from it zero-padded by this many pixels
    flip: bool = False  # images: mirror half of each batch left-right
    ema: float = 0.0  # decay per step of an average of the weights that becomes the model; 0 is off
    quantization: str = "off"  # "qat" or "ptq" at these bits (nasforge/quant/training.py)
    weight_bits: int = 32
    activation_bits: int = 32
    amp: str = "off"  # "bf16" (CUDA or CPU) or "fp16" (CUDA, with loss scaling): autocast while training
    channels_last: bool = False  # images: convolutions in the NHWC layout that GPU tensor cores read

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
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"shift must be a non-negative whole number of samples/pixels, got {self.shift!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if not self.mixup >= 0:
            raise ValueError(f"mixup must be a non-negative Beta parameter (0 is off), got {self.mixup}")
        check_image_settings(self.crop_padding, self.flip)
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be a decay in [0, 1) (0 is off), got {self.ema}")
        quant.check_settings(self.quantization, self.weight_bits, self.activation_bits)
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {tuple(AMP_DTYPES)}, got {self.amp!r}")
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be true or false, got {self.channels_last!r}")
        if self.amp != "off" and self.quantization != "off":
            raise ValueError(f"amp {self.amp!r} with quantization {self.quantization!r}: fake quantisation "
                             "rounds float32 values; set training.amp=off for a quantised child")

    def check_device(self, device: torch.device, dims: int) -> None:
        """Refuse what ``device`` or data of ``dims`` spatial axes cannot do, before any child trains."""
        check_image_settings(self.crop_padding, self.flip, dims)
        if self.amp == "fp16" and device.type != "cuda":
            raise ValueError(f"training.amp 'fp16' needs CUDA (this child trains on {device}); "
                             "on the CPU use training.amp=bf16 or off")
        if self.channels_last and dims != 2:
            raise ValueError(f"training.channels_last lays out images (2-D data); this data is {dims}-D")


def _optimizer(model: nn.Module, recipe: TrainRecipe, foreach: bool = True) -> torch.optim.Optimizer:
    # foreach: one multi-tensor update per step instead of a Python loop over the tensors (torch's
    # default on CUDA only); the same arithmetic, bit for bit (tests/test_train.py), and about 3%
    # faster for a child on the CPU
    params = model.parameters()
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay, foreach=foreach)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay, foreach=foreach)
    return torch.optim.SGD(params, lr=recipe.learning_rate, momentum=0.9, nesterov=True,
                           weight_decay=recipe.weight_decay, foreach=foreach)


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


def _batch_loss(model: nn.Module, criterion: nn.Module, xb: torch.Tensor, yb: torch.Tensor, recipe: TrainRecipe,
                gen: torch.Generator, mix_rng: Optional[np.random.Generator]) -> torch.Tensor:
    """One batch's loss on its augmented inputs, under autocast when ``recipe.amp`` is on."""
    xb = random_flip(random_crop(random_shift(xb, recipe.shift, gen), recipe.crop_padding, gen), recipe.flip, gen)
    if recipe.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    amp = AMP_DTYPES[recipe.amp]
    with torch.autocast(xb.device.type, dtype=amp, enabled=amp is not None):
        if mix_rng is None:
            return criterion(model(xb), yb)
        xb, partner, lam = mixup(xb, recipe.mixup, gen, mix_rng)
        out = model(xb)
        return lam * criterion(out, yb) + (1 - lam) * criterion(out, yb[partner])


def train_network(model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, recipe: TrainRecipe,
                  seed: int, device: torch.device, x_val: Optional[np.ndarray] = None,
                  y_val: Optional[np.ndarray] = None,
                  go_on: Optional[Callable[[List[float]], bool]] = None) -> List[float]:
    """Train in place; return validation accuracy after each epoch (empty without validation).
    ``go_on(history)`` after each epoch may stop training early (successive halving)."""
    recipe.check()
    recipe.check_device(device, len(x_train.shape) - 2)
    quant.before_training(model, recipe)
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    xt = torch.as_tensor(x_train, device=device)
    yt = torch.as_tensor(y_train, device=device)
    xv = torch.as_tensor(x_val, device=device) if x_val is not None else None
    n = len(xt)
    batches = n // recipe.batch_size + (1 if n % recipe.batch_size >= 2 else 0)
    opt = _optimizer(model, recipe)
    sched = _scheduler(opt, recipe, recipe.epochs * batches)
    gen = torch.Generator().manual_seed(seed)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    # fp16's narrow range needs the loss scaled so that small gradients do not flush to zero;
    # disabled, the scaler calls opt.step() unchanged
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.amp == "fp16")
    mix_rng = np.random.default_rng(seed) if recipe.mixup > 0 else None
    average = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(recipe.ema), use_buffers=True)
        if recipe.ema > 0 else None)
    history: List[float] = []
    for epoch in range(recipe.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        for b in range(batches):
            idx = perm[b * recipe.batch_size : (b + 1) * recipe.batch_size]
            loss = _batch_loss(model, criterion, xt[idx], yt[idx], recipe, gen, mix_rng)
            if not torch.isfinite(loss):
                raise TrialFailed(f"training loss became {float(loss)} in epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if sched is not None:
                sched.step()
            if average is not None:
                average.update_parameters(model)
        if xv is not None:
            scores = predict(average.module if average is not None else model, xv)
            history.append(float((scores.argmax(1) == y_val).mean()))
            if go_on is not None and not go_on(history):
                break
    if average is not None:  # the averaged weights (and normalisation statistics) become the model
        model.load_state_dict(average.module.state_dict())
    quant.after_training(model, recipe, xt, seed)
    return history


def search_split(data: Dataset, training: Dict[str, Any]):
    """((x, y) train, (x, y) validation): the split a search with the ``[training]`` settings
    ``training`` trained its children on and scored them with (TrainEstimator's defaults)."""
    return split_validation(data.x_train, data.y_train, training.get("val_fraction", 0.2),
                            training.get("split_seed", 0))


@ESTIMATORS.register("train")
class TrainEstimator(Estimator):
    """Trains each child on the training split; reward metric from the validation split."""

    name = "train"
    keyword_settings = TrainRecipe  # where **recipe goes: the settings schema (config.py) reads its fields

    def __init__(self, dataset: str = "mnist1d", val_fraction: float = 0.2, split_seed: int = 0,
                 score_epochs: int = 5, max_params: int = 5_000_000, device: str = "auto",
                 measure: Sequence[str] = (), latency_batch_size: int = 1, latency_warmup: int = 10,
                 latency_repeats: int = 30, latency_threads: int = 1, size_bits: int = 32,
                 pruning: Optional[Dict[str, Any]] = None, init_weights: str = "", **recipe: Any):
        self.recipe = TrainRecipe(**recipe)
        self.recipe.check()
        if pruning is not None and not isinstance(pruning, dict):
            raise ValueError(f"pruning must be a table of settings (eta, min_epochs, brackets), got {pruning!r}")
        try:
            self.pruning = Pruning(**pruning) if pruning is not None else None
        except TypeError as exc:
            raise ValueError(f"pruning: {exc}") from None
        if self.pruning is not None:
            self.pruning.check(self.recipe.epochs)
        if isinstance(measure, str):
            measure = [measure]
        self.probe = HardwareProbe(tuple(measure), latency_batch_size, latency_warmup, latency_repeats,
                                   latency_threads, size_bits)
        self.probe.check()
        super().__init__(dataset=dataset, val_fraction=val_fraction, split_seed=split_seed,
                         score_epochs=score_epochs, max_params=max_params, device=device,
                         measure=list(self.probe.measure), latency_batch_size=latency_batch_size,
                         latency_warmup=latency_warmup, latency_repeats=latency_repeats,
                         latency_threads=latency_threads, size_bits=size_bits, **asdict(self.recipe),
                         **({"pruning": asdict(self.pruning)} if self.pruning is not None else {}),
                         **({"init_weights": init_weights} if init_weights else {}))
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
        if not isinstance(init_weights, str):
            raise ValueError(f"init_weights must be the path of a state-dict file, got {init_weights!r}")
        # read in setup, so a missing or unreadable file stops the search before any child trains (a
        # search stores the path absolute: stored_config.file_references)
        self.init_weights = init_weights
        self.inherited: Optional[Dict[str, torch.Tensor]] = None

    def setup(self, space: SearchSpace, data: Optional[Dataset] = None) -> None:
        super().setup(space)
        self.data = data if data is not None else load_dataset(self.dataset_name)
        dims = space.dims
        if dims is not None and dims != self.data.dims:
            advice = (f"set the space's dims to {self.data.dims}" if "dims" in space.config()
                      else f"{space.name} takes {dims}-D data only")
            raise ConfigError(  # the space and the data disagree: a [space] matter, not a training setting
                f"[space] {space.name} is {dims}-D but dataset {self.data.name} has {self.data.dims}-D "
                f"inputs of shape {self.data.input_shape}; {advice}"
            )
        self.recipe.check_device(self.device, self.data.dims)
        if self.init_weights:
            self.inherited = read_weights(self.init_weights)
        (self.x_train, self.y_train), (self.x_val, self.y_val) = split_validation(
            self.data.x_train, self.data.y_train, self.val_fraction, self.split_seed)

    def build(self, tokens: Tokens) -> nn.Module:
        return self.space.build(tokens, self.data.input_shape, self.data.num_classes)

    def trained(self, tokens: Tokens, seed: int,
                go_on: Optional[Callable[[List[float]], bool]] = None) -> Tuple[nn.Module, Dict[str, Any]]:
        """Build and train one child: the model and its training metrics (one epoch per
        validation accuracy in ``val_acc_history``)."""
        torch.manual_seed(seed)
        model = self.build(tokens)
        params = count_params(model)
        if params > self.max_params:
            raise TrialFailed(f"{params:,} parameters exceed the limit of {self.max_params:,}")
        if self.inherited is not None:
            inherit(model, self.inherited)
        flops = count_flops(model, self.data.input_shape)
        start = time.perf_counter()
        history = train_network(model, self.x_train, self.y_train, self.recipe, seed, self.device,
                                self.x_val, self.y_val, go_on=go_on)
        seconds = time.perf_counter() - start
        return model, {
            "val_acc": max(history[-self.score_epochs:]),
            "val_acc_last": history[-1],
            "val_acc_history": history,
            "params": params,
            "flops": flops,
            "train_seconds": seconds,
            "epochs": len(history),
        } | self._quantised(model, history)

    def _quantised(self, model: nn.Module, history: List[float]) -> Dict[str, Any]:
        """A quantised child's bit metrics; after PTQ its val_acc is the quantised network's
        (the full-precision one stays as val_acc_fp32)."""
        if not quant.is_quantised(model):
            return {}
        out: Dict[str, Any] = quant_metrics(model, self.data.input_shape)
        if self.recipe.quantization == "ptq":
            scores = predict(model, torch.as_tensor(self.x_val, device=self.device))
            acc = float((scores.argmax(1) == self.y_val).mean())
            out.update(val_acc=acc, val_acc_last=acc, val_acc_fp32=max(history[-self.score_epochs:]))
        return out

    def max_epochs(self) -> int:
        return self.recipe.epochs

    def warm_up(self) -> None:
        prepare_flop_counter()  # every child's FLOPs are counted

    def produces(self) -> FrozenSet[str]:
        measured = set(self.probe.measure)
        if measured & set(LATENCY_METRICS):
            measured |= set(LATENCY_METRICS) | {"latency_threads", "latency_batch_size"}
        return frozenset({"val_acc", "val_acc_last", "val_acc_history", "params", "flops", "train_seconds",
                          "epochs"} | measured | quant.produces(self.recipe, getattr(self, "space", None)))

    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        rungs: Dict[int, List[float]] = {int(k): v for k, v in (self.context.get("rungs") or {}).items()}
        stopped: List[int] = []

        def go_on(history: List[float]) -> bool:
            epoch = len(history)
            if self.pruning is None or epoch not in rungs or keep_going(history[-1], rungs[epoch], self.pruning.eta):
                return True
            stopped.append(epoch)
            return False

        model, metrics = self.trained(tokens, seed, go_on)
        keys = self.fidelity_metrics
        history = metrics[keys.history]
        if stopped:
            metrics[keys.metric] = history[-1]  # the value at the rung that stopped it
        if self.pruning is not None and rungs:
            # the fidelity every child of this bracket is promised: what the strategy learns from
            metrics[keys.promised] = history[min(rungs) - 1]
        if stopped:
            metrics[keys.pruned_at] = stopped[0]
            return metrics  # a pruned child is not measured further
        return {**metrics, **self.probe.metrics(model, self.data.input_shape)}


def retrain_recipe(training: Dict[str, Any], epochs: Optional[int] = None, shift: Optional[int] = None,
                   label_smoothing: Optional[float] = None, mixup: Optional[float] = None,
                   ema: Optional[float] = None) -> TrainRecipe:
    """The final evaluation's recipe: the search's child training settings (``training``, a
    config section) with a longer schedule and label smoothing, which short children do without.
    ``epochs`` and ``label_smoothing`` override ``RETRAIN_EPOCHS`` and ``RETRAIN_LABEL_SMOOTHING``;
    ``shift``, ``mixup`` and ``ema`` override the search's (all off by default); 0 turns any off."""
    fields = TrainRecipe.__dataclass_fields__
    recipe = TrainRecipe(**{k: v for k, v in training.items() if k in fields})
    recipe.epochs = RETRAIN_EPOCHS if epochs is None else epochs
    recipe.label_smoothing = RETRAIN_LABEL_SMOOTHING if label_smoothing is None else label_smoothing
    for name, value in (("shift", shift), ("mixup", mixup), ("ema", ema)):
        if value is not None:
            setattr(recipe, name, value)
    recipe.check()
    return recipe


def retrain_and_test(space: SearchSpace, tokens: Tokens, data: Dataset, recipe: TrainRecipe, seed: int,
                     device: str = "auto", probe: Optional[HardwareProbe] = None) -> Tuple[nn.Module, Dict[str, Any]]:
    """Train from scratch on train+validation and report test metrics (the final evaluation);
    ``probe`` adds hardware metrics measured on the trained model (on the CPU)."""
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
        "shift": recipe.shift, "crop_padding": recipe.crop_padding, "flip": recipe.flip,
        "label_smoothing": recipe.label_smoothing,
        "seed": seed,
        **(quant_metrics(model, data.input_shape) if quant.is_quantised(model) else {}),
        **(probe.metrics(model, data.input_shape) if probe is not None else {}),
    }
