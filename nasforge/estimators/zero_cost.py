"""Zero-cost proxies: score an untrained network from one minibatch, in well under a second.

Each proxy is a function ``(model, x, y) -> float`` on a freshly initialised network; higher
means "predicted better". None of them changes the model's parameters, keeps a graph alive or
leaves a hook behind, so one process can score thousands of architectures without growing.

Definitions follow the papers (weights are those of convolutions and linear layers):

- ``synflow`` (Tanaka et al. 2020; Abdelfattah et al. 2021): on a float64 copy with every
  parameter replaced by its absolute value and batch norm removed, R = sum of the outputs for an
  all-ones input of batch size 1; score = sum |theta * dR/dtheta|.
- ``naswot`` (Mellor et al. 2021): binary code of every ReLU unit per example; kernel
  K = N_A - d_H (agreements between codes), score = log |det K|.
- ``snip`` (Lee et al. 2019): sum |theta * dL/dtheta| for the cross-entropy L of the batch.
- ``grad_norm``: sum over layers of the Euclidean norm of dL/dW.
- ``fisher`` (Turner et al. 2020): for every output channel z of a conv / linear layer,
  0.5 * mean over examples of (sum over positions of z * dL/dz)^2, summed.
- ``jacob_cov`` (Mellor et al. 2020, v1): J = d(sum of outputs)/dx per example; with the
  eigenvalues v of the correlation matrix of the rows of J and k = 1e-5,
  score = -sum(log(v + k) + 1 / (v + k)); at most as many examples as input features.
- ``params`` and ``flops``: the trivial baselines.

Networks are scored in training mode (batch statistics), as in the papers' code.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import Dataset, load_dataset, split_validation
from ..objectives.hardware import count_flops, count_params, prepare_flop_counter
from ..objectives.registry import register_metric
from ..spaces.base import SearchSpace, Tokens
from .base import ESTIMATORS, Estimator, TrialFailed
from .device import resolve_device

JACOB_COV_K = 1e-5
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)
_NORMS = (nn.modules.batchnorm._BatchNorm,)


def weighted_layers(model: nn.Module) -> List[nn.Module]:
    """Convolutions and linear layers: the layers whose weights the proxies score."""
    return [m for m in model.modules() if isinstance(m, _WEIGHTED)]


def _weights(model: nn.Module) -> List[torch.Tensor]:
    return [m.weight for m in weighted_layers(model)]


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, inputs: Sequence[torch.Tensor]):
    """Gradients of the batch's cross-entropy with respect to ``inputs`` (None where unused)."""
    loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, list(inputs), allow_unused=True)


# ---- the proxies -----------------------------------------------------------------------------------
def synflow(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> float:
    """Synaptic flow of |theta| for an all-ones input (data-free; ``x`` gives only the shape)."""
    net = copy.deepcopy(model)
    _remove_norms(net)
    net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    weights = _weights(net)
    if not weights:
        return 0.0
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    for p in net.parameters():
        p.requires_grad_(True)
    total = net(ones).sum()
    grads = torch.autograd.grad(total, weights, allow_unused=True)
    score = sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)
    del net, total, grads
    return score


def _remove_norms(model: nn.Module) -> None:
    """Replace every batch-norm module by the identity, in place."""
    for name, child in model.named_children():
        if isinstance(child, _NORMS):
            setattr(model, name, nn.Identity())
        else:
            _remove_norms(child)


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Connection sensitivity: sum |theta * dL/dtheta| over conv and linear weights."""
    weights = _weights(model)
    grads = _loss_grads(model, x, y, weights)
    return sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over layers of ||dL/dW||_2."""
    weights = _weights(model)
    grads = _loss_grads(model, x, y, weights)
    return sum(float(g.norm()) for g in grads if g is not None)


def fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Channel-wise Fisher information of the conv / linear outputs, summed."""
    outputs: List[torch.Tensor] = []

    def keep(module, inputs, output):
        outputs.append(output)

    hooks = [m.register_forward_hook(keep) for m in weighted_layers(model)]
    try:
        loss = F.cross_entropy(model(x), y)
    finally:
        for h in hooks:
            h.remove()
    if not outputs:
        return 0.0
    grads = torch.autograd.grad(loss, outputs, allow_unused=True)
    score = 0.0
    for z, g in zip(outputs, grads):
        if g is None:
            continue
        zg = (z * g).detach()
        per_channel = zg.flatten(2).sum(2) if zg.dim() > 2 else zg  # (N, channels)
        score += float(0.5 * per_channel.pow(2).mean(0).sum())
    outputs.clear()
    return score


def naswot_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K[i, j] = number of units on which binary codes i and j agree (N_A - Hamming distance)."""
    c = codes.to(torch.float64).flatten(1)
    return c @ c.T + (1 - c) @ (1 - c).T


def naswot_score(kernel: torch.Tensor) -> float:
    """log |det K|; -inf for a singular kernel (e.g. a network without ReLUs)."""
    _, logabsdet = torch.linalg.slogdet(kernel)
    return float(logabsdet)


def naswot(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> float:
    """Log-determinant of the activation-code kernel over every ReLU of the network."""
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def accumulate(module, inputs, output):
        kernel.add_(naswot_kernel(output.detach() > 0))

    hooks = [m.register_forward_hook(accumulate) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return naswot_score(kernel)


def jacob_cov_score(jacobian: np.ndarray, k: float = JACOB_COV_K) -> float:
    """-sum(log(v + k) + 1/(v + k)) over eigenvalues v of the rows' correlation matrix.

    A row with no variation (an output that ignores the input) has no correlation: -inf.
    """
    jacobian = np.asarray(jacobian, dtype=np.float64).reshape(len(jacobian), -1)
    if np.any(jacobian.std(axis=1) == 0):
        return float("-inf")
    corr = np.corrcoef(jacobian)
    v = np.clip(np.linalg.eigvalsh(corr), 0.0, None)  # round-off can make a zero slightly negative
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def jacob_cov(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> float:
    """Correlation of the input Jacobians across the batch (data-dependent, label-free).

    With more examples than input features the correlation matrix is singular whatever the
    network (MNIST-1D has 40 features), so only the first ``features`` examples are used.
    """
    features = int(np.prod(x.shape[1:]))
    x = x[:features].detach().clone().requires_grad_(True)
    (jac,) = torch.autograd.grad(model(x).sum(), [x])
    return jacob_cov_score(jac.detach().cpu().numpy())


def params(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> float:
    return float(count_params(model))


def flops(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> float:
    was_training = model.training
    result = float(count_flops(model, tuple(x.shape[1:])))
    model.train(was_training)
    return result


PROXIES: Dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "synflow": synflow,
    "naswot": naswot,
    "snip": snip,
    "grad_norm": grad_norm,
    "fisher": fisher,
    "jacob_cov": jacob_cov,
    "params": params,
    "flops": flops,
}
DATA_FREE = ("synflow", "params", "flops")  # need only the input shape: computed once, not per batch

# Why a NASWOT score is -inf, in the failed trial's reason: the log-determinant is faithful (the
# network maps two of the batch's examples to one ReLU code, the worst a code can do), but a reward
# cannot rank an infinity.
NASWOT_SINGULAR = ("its ReLU activation codes do not tell the scoring batch's examples apart (a network "
                   "without ReLUs has no codes at all), so NASWOT cannot score it")

for _name in PROXIES:
    register_metric(f"proxy_{_name}", "score", "maximize", f"zero-cost proxy {_name} at initialisation",
                    non_finite=NASWOT_SINGULAR if _name == "naswot" else "")


def score_network(model: nn.Module, batches: Sequence[Tuple[torch.Tensor, torch.Tensor]],
                  proxies: Sequence[str]) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Every proxy of ``model``: data proxies averaged over ``batches``; and seconds per proxy."""
    model.train()
    scores: Dict[str, float] = {}
    seconds: Dict[str, float] = {}
    for name in proxies:
        start = time.perf_counter()
        use = batches[:1] if name in DATA_FREE else batches
        values = [PROXIES[name](model, x, y) for x, y in use]
        scores[name] = float(np.mean(values))
        seconds[name] = time.perf_counter() - start
    return scores, seconds


# ---- the estimator ----------------------------------------------------------------------------------
@ESTIMATORS.register("zero-cost")
class ZeroCostEstimator(Estimator):
    """Scores each child with zero-cost proxies at initialisation; nothing is trained.

    The minibatches come from the training split (the validation split is carved off exactly as
    the training estimator does) and are the same for every architecture (``batch_seed``), so
    that scores differ only by architecture and initialisation (the trial's seed).
    Metrics: ``proxy_<name>`` for each proxy, ``params``, ``flops``, ``proxy_seconds`` (total)
    and ``proxy_seconds_each``.
    """

    name = "zero-cost"

    def __init__(self, dataset: str = "mnist1d", val_fraction: float = 0.2, split_seed: int = 0,
                 batch_size: int = 64, num_batches: int = 1, batch_seed: int = 0,
                 proxies: Optional[Sequence[str]] = None, device: str = "cpu"):
        proxies = list(PROXIES) if proxies is None else list(proxies)
        super().__init__(dataset=dataset, val_fraction=val_fraction, split_seed=split_seed,
                         batch_size=batch_size, num_batches=num_batches, batch_seed=batch_seed,
                         proxies=proxies, device=device)
        unknown = [p for p in proxies if p not in PROXIES]
        if unknown or not proxies:
            raise ValueError(f"zero-cost: unknown proxies {unknown or '(none given)'}; "
                             f"choose from {list(PROXIES)}")
        for name, value, low in (("batch_size", batch_size, 2), ("num_batches", num_batches, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"zero-cost: {name} must be an integer >= {low}, got {value!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"zero-cost: val_fraction must be in (0, 1), got {val_fraction}")
        self.dataset_name = dataset
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.batch_seed = batch_seed
        self.proxies = proxies
        self.device = resolve_device(device)
        self.data: Optional[Dataset] = None

    def setup(self, space: SearchSpace, data: Optional[Dataset] = None) -> None:
        if not callable(getattr(space, "build", None)) or type(space).build is SearchSpace.build:
            raise ValueError(f"zero-cost proxies need a space that builds networks; "
                             f"{space.name!r} cannot")
        super().setup(space)
        self.data = data if data is not None else load_dataset(self.dataset_name)
        (x_train, y_train), _ = split_validation(self.data.x_train, self.data.y_train,
                                                 self.val_fraction, self.split_seed)
        need = self.batch_size * self.num_batches
        if len(x_train) < need:
            raise ValueError(f"zero-cost: {self.num_batches} batches of {self.batch_size} need {need} "
                             f"training examples, the split has {len(x_train)}")
        rng = np.random.default_rng(self.batch_seed)
        rows = rng.choice(len(x_train), size=need, replace=False)
        self.batches = [
            (torch.as_tensor(x_train[rows[i:i + self.batch_size]], device=self.device),
             torch.as_tensor(y_train[rows[i:i + self.batch_size]], device=self.device).long())
            for i in range(0, need, self.batch_size)
        ]

    def warm_up(self) -> None:
        prepare_flop_counter()  # every child's FLOPs are counted

    def produces(self) -> FrozenSet[str]:
        names = {f"proxy_{p}" for p in self.proxies} | {"params", "proxy_seconds", "proxy_seconds_each"}
        return frozenset(names | ({"flops"} if "flops" in self.proxies else set()))

    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        torch.manual_seed(seed)
        try:
            model = self.space.build(tokens, self.data.input_shape, self.data.num_classes).to(self.device)
        except (ValueError, RuntimeError) as error:
            raise TrialFailed(f"could not build the network: {error}") from error
        start = time.perf_counter()
        try:
            scores, seconds = score_network(model, self.batches, self.proxies)
            metrics: Dict[str, Any] = {f"proxy_{k}": v for k, v in scores.items()}
            metrics["params"] = count_params(model)
            if "flops" in scores:
                metrics["flops"] = int(scores["flops"])
        except RuntimeError as error:  # shape errors, out of memory: this child only
            raise TrialFailed(f"proxy computation failed: {error}") from error
        finally:
            del model
        metrics["proxy_seconds"] = time.perf_counter() - start
        metrics["proxy_seconds_each"] = seconds
        return metrics
