"""``chain-cnn``: the Zoph & Le (2017) convolutional search space, for 1-D signals and 2-D images.

Per layer the controller chooses, in this order: which earlier layers feed it (one binary decision
per earlier layer, answered at the layer's anchor point), the operation, the kernel size (one size
for 1-D; height and width for 2-D), the number of filters and the stride. After the chain come the
readout (global average pooling, or flattening that keeps position) and a fully connected head whose
depth and width are also decisions. With an all-identity chain, flattening and a deep head the
network is an MLP.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from .base import SPACES, Decision, InvalidArchitectureError, SearchSpace, Tokens
from .chain_net import OPS, READOUTS, ChainNet

KERNELS = (1, 3, 5, 7)
FILTERS = (24, 36, 48, 64)
STRIDES = (1, 2)
HEAD_DEPTHS = (0, 1, 2)
HEAD_WIDTHS = (64, 128, 256)


@SPACES.register("chain-cnn")
class ChainCNNSpace(SearchSpace):
    name = "chain-cnn"

    def __init__(self, num_layers: int = 6, dims: int = 1):
        if dims not in (1, 2):
            raise ValueError(f"chain-cnn: dims must be 1 or 2, got {dims!r}")
        if not isinstance(num_layers, int) or not 1 <= num_layers <= 24:
            raise ValueError(f"chain-cnn: num_layers must be an integer in 1..24, got {num_layers!r}")
        self.num_layers = num_layers
        self.dims = dims
        self._decisions = self._make_decisions()
        self._index = {d.name: i for i, d in enumerate(self._decisions)}

    def config(self) -> Dict[str, Any]:
        return {"num_layers": self.num_layers, "dims": self.dims}

    def _kernel_names(self, layer: int) -> List[str]:
        if self.dims == 1:
            return [f"L{layer}.kernel"]
        return [f"L{layer}.kernel_h", f"L{layer}.kernel_w"]

    def _make_decisions(self) -> List[Decision]:
        out: List[Decision] = []
        for i in range(self.num_layers):
            for j in range(i):
                out.append(Decision(f"L{i}.from_L{j}", (0, 1), layer=i, source=j))
            out.append(Decision(f"L{i}.op", OPS, layer=i))
            for name in self._kernel_names(i):
                out.append(Decision(name, KERNELS, layer=i))
            out.append(Decision(f"L{i}.filters", FILTERS, layer=i))
            out.append(Decision(f"L{i}.stride", STRIDES, layer=i))
        out.append(Decision("readout", READOUTS))
        out.append(Decision("head.depth", HEAD_DEPTHS))
        out.append(Decision("head.width", HEAD_WIDTHS))
        return out

    @property
    def decisions(self) -> List[Decision]:
        return self._decisions

    # ---- interpretation -------------------------------------------------------------------------
    def canonical(self, tokens: Sequence[int]) -> Tokens:
        """Zero every choice the network ignores, so that such twins share a hash.

        Identity ignores kernel, filters and stride; pooling ignores filters; a head of depth 0
        ignores its width.
        """
        t = list(self.validate(tokens))
        ix = self._index
        for i in range(self.num_layers):
            op = OPS[t[ix[f"L{i}.op"]]]
            ignored = []
            if op == "identity":
                ignored = self._kernel_names(i) + [f"L{i}.filters", f"L{i}.stride"]
            elif op in ("maxpool", "avgpool"):
                ignored = [f"L{i}.filters"]
            for name in ignored:
                t[ix[name]] = 0
        if HEAD_DEPTHS[t[ix["head.depth"]]] == 0:
            t[ix["head.width"]] = 0
        return tuple(t)

    def spec(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int) -> Dict[str, Any]:
        """The plain-dict description that :class:`ChainNet` builds."""
        values = self.encode(tokens)
        if len(input_shape) != self.dims + 1:
            raise InvalidArchitectureError(
                f"chain-cnn with dims={self.dims} needs input shape (channels, "
                f"{'length' if self.dims == 1 else 'height, width'}), got {tuple(input_shape)}"
            )
        layers = []
        for i in range(self.num_layers):
            layers.append(
                {
                    "op": values[f"L{i}.op"],
                    "kernel": [int(values[n]) for n in self._kernel_names(i)],
                    "filters": int(values[f"L{i}.filters"]),
                    "stride": int(values[f"L{i}.stride"]),
                    "inputs": [j for j in range(i) if values[f"L{i}.from_L{j}"] == 1],
                }
            )
        return {
            "dims": self.dims,
            "in_channels": int(input_shape[0]),
            "input_size": [int(s) for s in input_shape[1:]],
            "num_classes": int(num_classes),
            "layers": layers,
            "head": {"depth": int(values["head.depth"]), "width": int(values["head.width"])},
            "readout": values["readout"],
        }

    def build(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int) -> ChainNet:
        return ChainNet(self.spec(tokens, input_shape, num_classes))

    def summary(self, tokens: Sequence[int]) -> str:
        """Compact form, e.g. ``C5x36 M3/2<0 I<0+1 | avg fc128``: op, kernel, filters, /stride, <inputs."""
        values = self.encode(tokens)
        parts = []
        for i in range(self.num_layers):
            op = values[f"L{i}.op"]
            kernel = "x".join(str(values[n]) for n in self._kernel_names(i))
            stride = f"/{values[f'L{i}.stride']}" if values[f"L{i}.stride"] != 1 else ""
            if op == "conv":
                part = f"C{kernel}x{values[f'L{i}.filters']}{stride}"
            elif op == "identity":
                part = "I"
            else:
                part = f"{'M' if op == 'maxpool' else 'A'}{kernel}{stride}"
            sources = [str(j) for j in range(i) if values[f"L{i}.from_L{j}"] == 1]
            if sources != ([str(i - 1)] if i else []):
                part += "<" + ("+".join(sources) if sources else "in")
            parts.append(part)
        head = "".join(f" fc{values['head.width']}" for _ in range(values["head.depth"]))
        return " ".join(parts) + f" | {values['readout']}{head}"

    def describe(self, tokens: Sequence[int]) -> List[str]:
        values = self.encode(tokens)
        lines = []
        for i in range(self.num_layers):
            sources = [f"L{j}" for j in range(i) if values[f"L{i}.from_L{j}"] == 1]
            src = " + ".join(sources) if sources else "input"
            op = values[f"L{i}.op"]
            kernel = "x".join(str(values[n]) for n in self._kernel_names(i))
            if op == "conv":
                body = f"conv {kernel}, {values[f'L{i}.filters']} filters, stride {values[f'L{i}.stride']}"
            elif op in ("maxpool", "avgpool"):
                body = f"{op} {kernel}, stride {values[f'L{i}.stride']}"
            else:
                body = "identity"
            lines.append(f"L{i}: {body}  <- {src}")
        readout = "global average pool" if values["readout"] == "avg" else "flatten"
        lines.append(f"readout: {readout}")
        depth = values["head.depth"]
        if depth:
            lines.append(f"head: {depth} x fc {values['head.width']} + relu, then fc to classes")
        else:
            lines.append("head: fc to classes")
        return lines
