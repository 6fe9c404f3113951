"""Single-path one-shot weight sharing (Guo et al., 2020): which spaces have such a supernet, and
the batch-norm recalibration that evaluating a path with inherited weights needs.

The method: train the supernet on one path per step, drawn uniformly from the space, so every path
is trained equally and none is favoured by a search's preferences; then score a candidate path
with the weights it inherits. Batch-norm running statistics accumulated while training many paths
describe none of them, so before a path is evaluated they are recomputed on a few training batches
for that path alone (the paper recomputes them on a random subset of the training data).

**Extension point.** A space gets single-path weight sharing by naming, in :data:`SUPERNETS`, a
module class built as ``Class(space, input_shape, num_classes)`` with ``forward(x, tokens)`` (the
path's output; ordinary ``nn.BatchNorm*`` modules, so train/eval mode mean what they do in the
stand-alone network) and ``extract(tokens)`` (the stand-alone network with the supernet's weights
and statistics, computing the same function in eval mode). Named by string so that importing the
estimator does not import every supernet.
"""

from __future__ import annotations

import importlib
from typing import Dict, List, Sequence, Type

import torch
from torch import nn

from ..spaces.base import SearchSpace

#: space name -> "module:Class" of its single-path supernet.
SUPERNETS: Dict[str, str] = {
    "nb201-cell": "nasforge.estimators.cell_supernet:CellSuperNet",
    "mobile-blocks": "nasforge.estimators.mobile_supernet:MobileSuperNet",
}

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def supernet_class(space: SearchSpace) -> Type[nn.Module]:
    """The class of ``space``'s single-path supernet; ValueError naming the spaces that have one."""
    where = SUPERNETS.get(space.name)
    if where is None:
        raise ValueError(f"shared-weights: no single-path supernet for the {space.name!r} space "
                         f"(spaces with one: {', '.join(sorted(SUPERNETS))}; chain-cnn uses mode 'enas')")
    module, _, cls = where.partition(":")
    return getattr(importlib.import_module(module), cls)


@torch.no_grad()
def recalibrate(net: nn.Module, tokens: Sequence[int], batches: List[torch.Tensor]) -> None:
    """Recompute every batch norm's running statistics for the path ``tokens`` alone (the equal-weight
    average over ``batches``), then leave ``net`` in eval mode: it now computes what the extracted
    stand-alone network computes. Statistics of modules off the path are reset, which is harmless:
    each path is recalibrated before it is evaluated."""
    norms = [m for m in net.modules() if isinstance(m, _BATCH_NORMS)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every calibration batch counts the same
    net.train()
    try:
        for x in batches:
            net(x, tokens)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        net.eval()
