"""``chain-cnn``: a chain of layers with anchor skip connections after Zoph & Le (2017), for 1-D
signals and 2-D images; ``paper=True`` gives the paper's own CIFAR-10 space.

Per layer the controller chooses, in this order: which earlier layers feed it (one binary decision
per earlier layer, answered at the layer's anchor point), the operation, the kernel size (one size
for 1-D; height and width for 2-D), the number of filters and the stride. After the chain come the
readout (global average pooling, or flattening that keeps position) and a fully connected head whose
depth and width are also decisions. With an all-identity chain, flattening and a deep head the
network is an MLP.

Where this default space differs from the paper's (Section 4.1; docs/architecture.md, "Where
nasforge differs from the paper"): one stride for every axis with values (1, 2), where the paper
predicts stride height and width separately from (1, 2, 3); an operation choice (conv, max / average
pooling, identity: the paper's searched layers are all convolutions; its pooling variant inserts
fixed pooling layers); the readout and head decisions (the paper names none); 1-D inputs; and a
fixed depth, 6 by default, where the paper grows the depth from 6 by 2 every 1,600 children and
reports networks of 15 (no strides) and 20 (strided) layers. Kernel sizes (1, 3, 5, 7), filters
(24, 36, 48, 64), anchor skips, zero-padding and concatenation of inputs are the paper's.

``mixed_precision=True`` adds per-layer weight and activation bit widths as decisions; with
``architecture`` (the tokens of a network of the plain space) every other choice is fixed to that
network's and only its bit widths are searched.

``paper=True`` (``--set space.paper=true``): the paper's strided space exactly, 2-D only (filter
height and width have no 1-D reading, so 1-D data is refused). Per layer: the anchor's skip
decisions, then filter height, filter width, stride height, stride width, number of filters (the
paper's order); every layer a convolution (conv, batch norm, ReLU). No op, readout or head
decisions: the fixed ending, which the paper does not specify, is the concatenated unread layers,
global average pooling and one linear layer to the classes. Depth is ``num_layers`` (the paper's
starting depth 6 unless set; its reported strided network has 20: ``--layers 20``; no growth
schedule).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .base import SPACES, Decision, InvalidArchitectureError, SearchSpace, Tokens

# The choices this space offers; ``chain_net.py`` (torch, exported standalone, so it cannot import
# this module) builds each of them, which tests/test_chain_cnn.py checks. Kept here so that reading a
# space (a report, a table lookup) imports no torch.
OPS = ("conv", "maxpool", "avgpool", "identity")
READOUTS = ("avg", "flatten")
KERNELS = (1, 3, 5, 7)
FILTERS = (24, 36, 48, 64)
STRIDES = (1, 2)
PAPER_STRIDES = (1, 2, 3)
HEAD_DEPTHS = (0, 1, 2)
HEAD_WIDTHS = (64, 128, 256)
#: Bit widths searched with ``mixed_precision`` unless set (fake.py's widths, off excluded).
MP_WEIGHT_BITS = (1, 2, 4, 8)
MP_ACTIVATION_BITS = (4, 8)


@SPACES.register("chain-cnn")
class ChainCNNSpace(SearchSpace):
    name = "chain-cnn"

    def __init__(self, num_layers: int = 6, dims: int = 1, paper: bool = False, mixed_precision: bool = False,
                 weight_bit_choices: Optional[List[int]] = None, activation_bit_choices: Optional[List[int]] = None,
                 architecture: Optional[List[int]] = None):
        if dims not in (1, 2):
            raise ValueError(f"chain-cnn: dims must be 1 or 2, got {dims!r}")
        if not isinstance(num_layers, int) or not 1 <= num_layers <= 24:
            raise ValueError(f"chain-cnn: num_layers must be an integer in 1..24, got {num_layers!r}")
        if not isinstance(paper, bool):
            raise ValueError(f"chain-cnn: paper must be true or false, got {paper!r}")
        if paper and dims != 2:
            raise ValueError("chain-cnn: paper=true is the paper's image space (filter and stride height and "
                             f"width) and needs 2-D data of shape (channels, height, width); this data is {dims}-D")
        if paper and mixed_precision:
            raise ValueError("chain-cnn: mixed_precision is not offered in the paper's space (paper=true)")
        self.num_layers = num_layers
        self.dims = dims
        self.paper = paper
        self.mixed_precision = mixed_precision
        self.precision = precision_choices(mixed_precision, weight_bit_choices, activation_bit_choices)
        self.architecture = None if architecture is None else self._fixed_architecture(architecture)
        self._decisions = self._make_decisions()
        self._index = {d.name: i for i, d in enumerate(self._decisions)}

    def config(self) -> Dict[str, Any]:
        # "paper" only when set, so that the stored settings of earlier searches stay as they were
        return {"num_layers": self.num_layers, "dims": self.dims, **({"paper": True} if self.paper else {}),
                **({"mixed_precision": True, "weight_bit_choices": list(self.precision[0]),
                    "activation_bit_choices": list(self.precision[1])} if self.mixed_precision else {}),
                **({"architecture": list(self.architecture)} if self.architecture is not None else {})}

    def _fixed_architecture(self, tokens) -> Tokens:
        """``architecture``: the tokens of a network of the plain space (same depth and dims, no bit
        decisions), e.g. an fp32 search's best. Its choices become fixed and only the bit widths of
        its conv and linear layers are searched: HAQ's setting (precision for a given network), with
        this space's controller. ValueError names the fault."""
        if not self.mixed_precision:
            raise ValueError("chain-cnn: architecture fixes a network whose bit widths are searched, "
                             "so it needs mixed_precision=true")
        plain = ChainCNNSpace(num_layers=self.num_layers, dims=self.dims)
        if not isinstance(tokens, (list, tuple)):
            raise ValueError(f"chain-cnn: architecture must be a list of tokens, got {tokens!r}")
        try:
            return plain.canonical(tokens)
        except InvalidArchitectureError as err:
            raise ValueError(f"chain-cnn: architecture is not a network of chain-cnn with num_layers="
                             f"{self.num_layers}, dims={self.dims} ({len(plain.decisions)} tokens): {err}") from None

    def _kernel_names(self, layer: int) -> List[str]:
        if self.dims == 1:
            return [f"L{layer}.kernel"]
        return [f"L{layer}.kernel_h", f"L{layer}.kernel_w"]

    def _stride_names(self, layer: int) -> List[str]:
        return [f"L{layer}.stride_h", f"L{layer}.stride_w"] if self.paper else [f"L{layer}.stride"]

    def _make_decisions(self) -> List[Decision]:
        out = self._all_decisions()
        if self.architecture is None:
            return out
        # a fixed network: each of its choices becomes the only one, and so do the bits of a layer
        # that has no weights (pooling, identity), which the network ignores
        fixed = dict(zip((d.name for d in ChainCNNSpace(self.num_layers, self.dims).decisions), self.architecture))
        ops = {i: OPS[fixed[f"L{i}.op"]] for i in range(self.num_layers)}
        for k, d in enumerate(out):
            if d.name in fixed:  # no ``source`` either: a controller answers those by attention, 0 or 1
                out[k] = replace(d, choices=(d.choices[fixed[d.name]],), source=None)
            elif d.layer is not None and ops[d.layer] != "conv":
                out[k] = replace(d, choices=d.choices[:1])
        return out

    def _all_decisions(self) -> List[Decision]:
        out: List[Decision] = []
        for i in range(self.num_layers):
            for j in range(i):
                out.append(Decision(f"L{i}.from_L{j}", (0, 1), layer=i, source=j))
            if self.paper:
                out += [Decision(name, KERNELS, layer=i) for name in self._kernel_names(i)]
                out += [Decision(name, PAPER_STRIDES, layer=i) for name in self._stride_names(i)]
                out.append(Decision(f"L{i}.filters", FILTERS, layer=i))
                continue
            out.append(Decision(f"L{i}.op", OPS, layer=i))
            for name in self._kernel_names(i):
                out.append(Decision(name, KERNELS, layer=i))
            out.append(Decision(f"L{i}.filters", FILTERS, layer=i))
            out.append(Decision(f"L{i}.stride", STRIDES, layer=i))
            out += self._bit_decisions(f"L{i}", layer=i)
        if not self.paper:
            out.append(Decision("readout", READOUTS))
            out.append(Decision("head.depth", HEAD_DEPTHS))
            out.append(Decision("head.width", HEAD_WIDTHS))
            out += self._bit_decisions("head")
        return out

    def _bit_decisions(self, prefix: str, **where: int) -> List[Decision]:
        """With mixed precision: the weight and activation bits of a layer (or of the whole head)."""
        if not self.mixed_precision:
            return []
        return [Decision(f"{prefix}.weight_bits", self.precision[0], **where),
                Decision(f"{prefix}.activation_bits", self.precision[1], **where)]

    @property
    def decisions(self) -> List[Decision]:
        return self._decisions

    # ---- interpretation -------------------------------------------------------------------------
    def canonical(self, tokens: Sequence[int]) -> Tokens:
        """Zero every choice the network ignores, so that such twins share a hash.

        Identity ignores kernel, filters and stride; pooling ignores filters; a head of depth 0
        ignores its width. The paper's space has no ignored choice.
        """
        t = list(self.validate(tokens))
        if self.paper:
            return tuple(t)
        ix = self._index
        for i in range(self.num_layers):
            op = self._value(t, f"L{i}.op")
            ignored = []
            if op == "identity":
                ignored = self._kernel_names(i) + [f"L{i}.filters", f"L{i}.stride"]
            elif op in ("maxpool", "avgpool"):
                ignored = [f"L{i}.filters"]
            if op != "conv" and self.mixed_precision:
                ignored += [f"L{i}.weight_bits", f"L{i}.activation_bits"]
            for name in ignored:
                t[ix[name]] = 0
        if self._value(t, "head.depth") == 0:
            t[ix["head.width"]] = 0
        return tuple(t)

    def _value(self, tokens: Sequence[int], name: str) -> Any:
        """The value chosen for one decision (read through the decision: a fixed one has one choice)."""
        index = self._index[name]
        return self._decisions[index].choices[tokens[index]]

    def layers(self, tokens: Sequence[int]) -> List[Dict[str, Any]]:
        """Each layer as ``ChainNet`` reads it: op, kernel, filters, stride (a list in the paper's
        space: height, width), inputs."""
        values = self.encode(tokens)
        out = []
        for i in range(self.num_layers):
            strides = [int(values[n]) for n in self._stride_names(i)]
            out.append({
                "op": "conv" if self.paper else values[f"L{i}.op"],
                "kernel": [int(values[n]) for n in self._kernel_names(i)],
                "filters": int(values[f"L{i}.filters"]),
                "stride": strides if self.paper else strides[0],
                "inputs": [j for j in range(i) if values[f"L{i}.from_L{j}"] == 1],
            })
        return out

    def ending(self, tokens: Sequence[int]) -> Dict[str, Any]:
        """Readout and head; fixed in the paper's space (average pooling, one linear layer)."""
        if self.paper:
            return {"readout": "avg", "head": {"depth": 0, "width": HEAD_WIDTHS[0]}}
        values = self.encode(tokens)
        return {"readout": values["readout"],
                "head": {"depth": int(values["head.depth"]), "width": int(values["head.width"])}}

    def spec(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int) -> Dict[str, Any]:
        """The plain-dict description that :class:`ChainNet` builds."""
        self.validate(tokens)
        if len(input_shape) != self.dims + 1:
            raise InvalidArchitectureError(
                f"chain-cnn with dims={self.dims} needs input shape (channels, "
                f"{'length' if self.dims == 1 else 'height, width'}), got {tuple(input_shape)}"
            )
        return {
            "dims": self.dims,
            "in_channels": int(input_shape[0]),
            "input_size": [int(s) for s in input_shape[1:]],
            "num_classes": int(num_classes),
            "layers": self.layers(tokens),
            **self.ending(tokens),
            **({"quant": self.quant_record(tokens)} if self.mixed_precision else {}),
        }

    def quant_record(self, tokens: Sequence[int]) -> Dict[str, List[int]]:
        """Bits per conv / linear layer of the network, in module order (convolutions of the chain,
        then the head's linear layers), as ``nasforge.quant.layers`` reads them."""
        values = self.encode(tokens)
        owners = [f"L{i}" for i, layer in enumerate(self.layers(tokens)) if layer["op"] == "conv"]
        owners += ["head"] * (self.ending(tokens)["head"]["depth"] + 1)
        return {"weight_bits": [int(values[f"{o}.weight_bits"]) for o in owners],
                "activation_bits": [int(values[f"{o}.activation_bits"]) for o in owners]}

    def build(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int):
        from .chain_net import ChainNet

        return ChainNet(self.spec(tokens, input_shape, num_classes))

    @staticmethod
    def _stride_text(stride) -> str:
        steps = stride if isinstance(stride, list) else [stride]
        return "x".join(map(str, steps))

    def summary(self, tokens: Sequence[int]) -> str:
        """Compact form, e.g. ``C5x36 M3/2<0 I<0+1 | avg fc128``: op, kernel, filters, /stride, <inputs
        (the paper's space: ``C3x5x36/2x1``, stride height x width); with mixed precision each conv
        and the head carry their weight and activation bits, ``C5x36@w4a8``."""
        parts = []
        bits = iter(zip(*self.quant_record(tokens).values())) if self.mixed_precision else None
        for i, layer in enumerate(self.layers(tokens)):
            op, kernel = layer["op"], "x".join(map(str, layer["kernel"]))
            stride = "" if set(self._stride_text(layer["stride"]).split("x")) == {"1"} \
                else f"/{self._stride_text(layer['stride'])}"
            if op == "conv":
                part = f"C{kernel}x{layer['filters']}{stride}"
                if bits is not None:
                    part += "@w{}a{}".format(*next(bits))
            elif op == "identity":
                part = "I"
            else:
                part = f"{'M' if op == 'maxpool' else 'A'}{kernel}{stride}"
            if layer["inputs"] != ([i - 1] if i else []):
                part += "<" + ("+".join(map(str, layer["inputs"])) if layer["inputs"] else "in")
            parts.append(part)
        end = self.ending(tokens)
        head = "".join(f" fc{end['head']['width']}" for _ in range(end["head"]["depth"]))
        if bits is not None:  # one width for every linear layer of the head, classifier included
            head += " @w{}a{}".format(*next(bits))
        return " ".join(parts) + f" | {end['readout']}{head}"

    def describe(self, tokens: Sequence[int]) -> List[str]:
        lines = []
        for i, layer in enumerate(self.layers(tokens)):
            src = " + ".join(f"L{j}" for j in layer["inputs"]) if layer["inputs"] else "input"
            op, kernel = layer["op"], "x".join(map(str, layer["kernel"]))
            stride = self._stride_text(layer["stride"])
            if op == "conv":
                body = f"conv {kernel}, {layer['filters']} filters, stride {stride}"
            elif op in ("maxpool", "avgpool"):
                body = f"{op} {kernel}, stride {stride}"
            else:
                body = "identity"
            lines.append(f"L{i}: {body}  <- {src}")
        end = self.ending(tokens)
        lines.append(f"readout: {'global average pool' if end['readout'] == 'avg' else 'flatten'}")
        depth = end["head"]["depth"]
        if depth:
            lines.append(f"head: {depth} x fc {end['head']['width']} + relu, then fc to classes")
        else:
            lines.append("head: fc to classes")
        return lines


def precision_choices(mixed: bool, weight: Optional[List[int]], activation: Optional[List[int]]):
    """The searched (weight, activation) bit choices, checked; ValueError names the setting."""
    if not isinstance(mixed, bool):
        raise ValueError(f"chain-cnn: mixed_precision must be true or false, got {mixed!r}")
    if not mixed and (weight is not None or activation is not None):
        raise ValueError("chain-cnn: weight_bit_choices and activation_bit_choices need mixed_precision=true")
    if not mixed:  # nothing to check: and no torch (fake.py's) for a space that is only read
        return MP_WEIGHT_BITS, MP_ACTIVATION_BITS
    from ..quant.fake import ACTIVATION_BITS, WEIGHT_BITS

    out = []
    for given, default, allowed, what in ((weight, MP_WEIGHT_BITS, WEIGHT_BITS, "weight"),
                                          (activation, MP_ACTIVATION_BITS, ACTIVATION_BITS, "activation")):
        choices = tuple(default if given is None else given)
        if not choices or any(isinstance(b, bool) or b not in allowed for b in choices) \
                or len(set(choices)) != len(choices):
            raise ValueError(f"chain-cnn: {what}_bit_choices must be distinct values from "
                             f"{', '.join(map(str, allowed))}, got {given!r}")
        out.append(choices)
    return tuple(out)
