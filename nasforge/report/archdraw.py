"""Architecture drawings as standalone SVG text, so the dashboard and the offline report show the
same picture without a graph-layout program (graphviz would be one more system package).

The chain-cnn drawing runs top to bottom: the input, one box per layer (operation, kernel, filters,
stride), the readout and the head. The usual ``i-1 -> i`` edge is a straight arrow; a skip (or a
layer reading the network input) is an arc on the left; the layers no later layer reads, which the
space feeds to the readout with the last layer, get an arc on the right. Other spaces are drawn as
their ``describe()`` lines.
"""

from __future__ import annotations

from html import escape
from typing import Any, Dict, List, Sequence

# Okabe-Ito colours (safe for the common colour-vision deficiencies), one per operation
OP_COLOURS = {"conv": "#0072B2", "maxpool": "#E69F00", "avgpool": "#009E73", "identity": "#999999"}
BOX_W, BOX_H, GAP, LEFT, RIGHT = 250, 34, 22, 150, 110


def chain_layers(space, tokens: Sequence[int]) -> Dict[str, Any]:
    """The layers a chain-cnn architecture builds, read from the decisions by name (no input shape
    needed, unlike ``spec``)."""
    values = space.encode(tokens)
    n = space.num_layers
    kernels = [[int(values[k]) for k in space._kernel_names(i)] for i in range(n)]
    layers = [{"op": values[f"L{i}.op"], "kernel": kernels[i], "filters": int(values[f"L{i}.filters"]),
               "stride": int(values[f"L{i}.stride"]),
               "inputs": [j for j in range(i) if values[f"L{i}.from_L{j}"] == 1]} for i in range(n)]
    read = {j for layer in layers for j in layer["inputs"]}
    to_readout = sorted({n - 1, *[i for i in range(n) if i not in read]})
    return {"layers": layers, "to_readout": to_readout, "readout": values["readout"],
            "head_depth": int(values["head.depth"]), "head_width": int(values["head.width"])}


def _label(layer: Dict[str, Any]) -> str:
    kernel = "x".join(map(str, layer["kernel"]))
    stride = f", stride {layer['stride']}" if layer["stride"] != 1 else ""
    if layer["op"] == "conv":
        return f"conv {kernel}, {layer['filters']} filters{stride}"
    if layer["op"] == "identity":
        return "identity"
    return f"{layer['op']} {kernel}{stride}"


def _box(y: float, text: str, colour: str, title: str = "") -> str:
    x = LEFT
    return (f'<g><title>{escape(title or text)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{colour}" fill-opacity="0.15" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x + BOX_W / 2}" y="{y + BOX_H / 2 + 5}" text-anchor="middle">{escape(text)}</text></g>')


def draw_chain(space, tokens: Sequence[int]) -> str:
    arch = chain_layers(space, tokens)
    layers = arch["layers"]
    rows: List[tuple] = [("input", "#555555", "the network input")]
    for i, layer in enumerate(layers):
        rows.append((f"L{i}: {_label(layer)}", OP_COLOURS.get(layer["op"], "#555555"), f"layer {i}"))
    rows.append(("readout: " + ("global average pool" if arch["readout"] == "avg" else "flatten"), "#CC79A7",
                 "concatenates the last layer and every layer no later layer reads"))
    rows.extend((f"fc {arch['head_width']} + ReLU", "#D55E00", "head") for _ in range(arch["head_depth"]))
    rows.append(("fc to classes", "#D55E00", "output layer"))
    y_of = [10 + k * (BOX_H + GAP) for k in range(len(rows))]
    height = y_of[-1] + BOX_H + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="arch" viewBox="0 0 {LEFT + BOX_W + RIGHT} {height}" '
             f'width="{LEFT + BOX_W + RIGHT}" height="{height}" font-family="sans-serif" font-size="13">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>']
    mid = LEFT + BOX_W / 2

    def top(row: int) -> float:
        return y_of[row]

    def bottom(row: int) -> float:
        return y_of[row] + BOX_H

    edge = 'fill="none" stroke="#333" stroke-width="1.5" marker-end="url(#arrow)"'
    for i, layer in enumerate(layers):
        sources = layer["inputs"] or [-1]  # no input: the layer reads the network input
        for j in sources:
            src, dst = j + 1, i + 1  # rows: 0 is the input
            if src == dst - 1:
                parts.append(f'<path d="M{mid},{bottom(src)} L{mid},{top(dst)}" {edge}/>')
            else:
                bend = LEFT - 20 - 16 * (dst - src)
                y0, y1 = y_of[src] + BOX_H / 2, y_of[dst] + BOX_H / 2
                parts.append(f'<path d="M{LEFT},{y0} C{bend},{y0} {bend},{y1} {LEFT},{y1}" {edge} '
                             f'stroke-dasharray="5,3"><title>skip: {"input" if j < 0 else f"L{j}"} feeds L{i}</title>'
                             '</path>')
    readout_row = len(layers) + 1
    for j in arch["to_readout"]:
        src = j + 1
        if src == readout_row - 1:
            parts.append(f'<path d="M{mid},{bottom(src)} L{mid},{top(readout_row)}" {edge}/>')
        else:
            bend = LEFT + BOX_W + 20 + 16 * (readout_row - src)
            y0, y1 = y_of[src] + BOX_H / 2, y_of[readout_row] + BOX_H / 2
            parts.append(f'<path d="M{LEFT + BOX_W},{y0} C{bend},{y0} {bend},{y1} {LEFT + BOX_W},{y1}" {edge} '
                         f'stroke-dasharray="2,3"><title>L{j} is read by no later layer: it feeds the readout'
                         '</title></path>')
    for row in range(readout_row, len(rows) - 1):
        parts.append(f'<path d="M{mid},{bottom(row)} L{mid},{top(row + 1)}" {edge}/>')
    parts.extend(_box(y_of[k], text, colour, title) for k, (text, colour, title) in enumerate(rows))
    parts.append("</svg>")
    return "".join(parts)


def draw_lines(lines: Sequence[str]) -> str:
    """Any space: its ``describe()`` lines, one box each."""
    width = max(300, 8 * max((len(line) for line in lines), default=10) + 30)
    height = 10 + len(lines) * (BOX_H - 6)
    body = "".join(f'<text x="12" y="{30 + k * (BOX_H - 6)}">{escape(line)}</text>' for k, line in enumerate(lines))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="arch" viewBox="0 0 {width} {height + 10}" '
            f'width="{width}" height="{height + 10}" font-family="monospace" font-size="13">'
            f'<rect x="1" y="1" width="{width - 2}" height="{height + 8}" rx="6" fill="#f6f6f6" stroke="#999"/>'
            f"{body}</svg>")


def chain_space_of(space):
    """The chain-cnn space a space draws with: itself, or the space a table was made from."""
    from ..spaces.chain_cnn import ChainCNNSpace

    for candidate in (space, getattr(space, "base", None)):
        if isinstance(candidate, ChainCNNSpace) and not candidate.paper:  # the paper's: drawn as lines
            return candidate
    return None


def draw(space, tokens: Sequence[int]) -> str:
    chain = chain_space_of(space)
    if chain is not None:
        return draw_chain(chain, tokens)
    return draw_lines(space.describe(tokens))
