"""The trainable ``nb201-cell`` space: the table's tokens and hashes, and the network it builds.

Hashes and tokens are checked against the tabular ``nb201-cifar10`` space for all 15,625 cells;
the network against a hand count of its parameters and against NAS-Bench-201's rule that a cell
cut off from its input outputs zero.
"""

from __future__ import annotations

import importlib.util
import itertools

import pytest
import torch

from nasforge.spaces.base import InvalidArchitectureError, create_space
from nasforge.spaces.cell_net import Cell, CellNet, parse_cell

ALL_TOKENS = list(itertools.product(range(5), repeat=6))
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGE_NAMES = ("edge_1<-0", "edge_2<-0", "edge_2<-1", "edge_3<-0", "edge_3<-1", "edge_3<-2")


def cell(**ops) -> tuple:
    """Tokens of a cell given as e10=..., e31=... (edge to, from); other edges none."""
    return tuple(OPS.index(ops.get(f"e{name[5]}{name[8]}", "none")) for name in EDGE_NAMES)


@pytest.fixture(scope="module")
def spaces():
    return create_space("nb201-cell"), create_space("nb201-cifar10")


def test_same_decisions_as_the_table(spaces):
    mine, table = spaces
    assert [(d.name, d.choices) for d in mine.decisions] == [(d.name, d.choices) for d in table.decisions]
    assert [d.name for d in mine.decisions] == list(EDGE_NAMES)


def test_every_cell_has_the_tables_hash_and_builds_the_tables_cell(spaces):
    mine, table = spaces
    assert len(ALL_TOKENS) == 15625
    for tokens in ALL_TOKENS:
        assert mine.arch_hash(tokens) == table.arch_hash(tokens), tokens
        spec_cell = mine.spec(tokens, (1, 8, 8), 10)["cell"]
        assert table.from_arch_str(spec_cell) == tokens  # the network's cell string is the table's row
        built = {f"edge_{to}<-{src}": op for to, src, op in parse_cell(spec_cell)}
        assert built == table.encode(tokens)
    # the skeleton's settings change the network, not the cell's identity
    other = create_space("nb201-cell", cells_per_stage=5, channels=16)
    assert other.arch_hash(ALL_TOKENS[777]) == mine.arch_hash(ALL_TOKENS[777])


@pytest.mark.skipif(importlib.util.find_spec("analognasbench") is None, reason="NAS-Bench-201 table not installed")
def test_every_cell_maps_to_the_same_table_row(spaces):
    mine, table = spaces
    rows = table.all_metrics()
    assert [tuple(r) for r in rows["tokens"].tolist()] == ALL_TOKENS  # row i is the i-th token sequence
    for i in (0, 1, 4242, 15624):
        looked_up = table.lookup(mine.validate(ALL_TOKENS[i]))
        assert looked_up["fp_acc"] == float(rows["fp_acc"][i])


def test_isomorphic_cells_share_a_hash_in_both_spaces(spaces):
    conv = cell(e30="nor_conv_3x3")
    twins = [
        cell(e10="skip_connect", e31="nor_conv_3x3"),  # a skip on the way
        cell(e30="nor_conv_3x3", e21="nor_conv_1x1"),  # a branch from a node fed by nothing
        cell(e30="nor_conv_3x3", e10="avg_pool_3x3"),  # a node that never reaches the output
    ]
    different = [cell(e30="nor_conv_1x1"), cell(e30="nor_conv_3x3", e10="skip_connect", e31="skip_connect")]
    for space in spaces:
        for twin in twins:
            assert space.arch_hash(twin) == space.arch_hash(conv), (space.name, twin)
        for other in different:
            assert space.arch_hash(other) != space.arch_hash(conv), (space.name, other)
        # every cell cut off from its input is one class
        cut = {space.arch_hash(t) for t in (cell(), cell(e10="nor_conv_3x3", e21="skip_connect"),
                                            cell(e21="nor_conv_3x3", e32="skip_connect"))}
        assert len(cut) == 1


def test_parameters_by_hand():
    """N=1, C=4, 1 input channel, 10 classes; cell: conv3x3 1<-0, skip 2<-1, conv1x1 3<-0, pool 3<-1."""
    tokens = cell(e10="nor_conv_3x3", e21="skip_connect", e30="nor_conv_1x1", e31="avg_pool_3x3")
    net = create_space("nb201-cell", cells_per_stage=1, channels=4).build(tokens, (1, 8, 8), 10)
    stem = 9 * 1 * 4 + 2 * 4  # 3x3 conv 1->4, batch norm (weight, bias)

    def one_cell(c):  # 3x3 conv + BN, 1x1 conv + BN; skip and pooling have none
        return (9 * c * c + 2 * c) + (c * c + 2 * c)

    def reduction(c_in, c_out):  # 3x3 stride 2 + BN, 3x3 + BN, 1x1 shortcut conv
        return (9 * c_in * c_out + 2 * c_out) + (9 * c_out * c_out + 2 * c_out) + c_in * c_out

    head = 2 * 16 + (16 * 10 + 10)  # last batch norm, linear
    want = stem + one_cell(4) + reduction(4, 8) + one_cell(8) + reduction(8, 16) + one_cell(16) + head
    assert want == 8294
    assert sum(p.numel() for p in net.parameters()) == want


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 12, 12), (3, 7, 9)])
def test_builds_and_runs_on_images(shape):
    space = create_space("nb201-cell", cells_per_stage=1, channels=4)
    net = space.build(cell(e10="nor_conv_3x3", e20="avg_pool_3x3", e31="skip_connect", e32="nor_conv_1x1"), shape, 5)
    out = net(torch.randn(4, *shape))
    assert out.shape == (4, 5) and torch.isfinite(out).all()


def test_refuses_one_dimensional_data():
    space = create_space("nb201-cell")
    with pytest.raises(InvalidArchitectureError, match="2-D images.*1-D signals need chain-cnn"):
        space.build(cell(e30="skip_connect"), (1, 40), 10)
    with pytest.raises(ValueError, match="cells_per_stage must be an integer"):
        create_space("nb201-cell", cells_per_stage=0)


def test_a_cell_cut_off_from_its_input_outputs_zero():
    x = torch.randn(3, 4, 6, 6)
    for tokens in (cell(), cell(e10="nor_conv_3x3", e20="skip_connect"), cell(e21="nor_conv_3x3", e32="skip_connect")):
        c = Cell(parse_cell(create_space("nb201-cell").arch_str(tokens)), 4)
        assert torch.equal(c(x), torch.zeros_like(x)), tokens
    # the whole network then gives every image the same logits
    net = create_space("nb201-cell", cells_per_stage=1, channels=4).build(cell(e10="nor_conv_3x3"), (1, 8, 8), 10)
    net.eval()
    out = net(torch.randn(5, 1, 8, 8))
    assert torch.allclose(out, out[:1].expand_as(out))
    # edges fed only by zeros are not built: no parameters for the conv from dead node 1
    live = Cell(parse_cell(create_space("nb201-cell").arch_str(cell(e30="skip_connect", e21="nor_conv_3x3"))), 4)
    assert sum(p.numel() for p in live.parameters()) == 0


def test_cell_net_spec_errors():
    good = create_space("nb201-cell").spec(cell(e30="skip_connect"), (1, 8, 8), 10)
    with pytest.raises(ValueError, match="needs one edge from each"):
        CellNet({**good, "cell": "|skip_connect~0|+|none~0|+|none~0|none~1|none~2|"})
    with pytest.raises(ValueError, match="bad edge"):
        CellNet({**good, "cell": "|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|"})


def test_an_edge_is_built_exactly_when_removing_it_changes_the_function(spaces):
    """Over all 15,625 cells: the built edges are those whose removal changes the table's expression
    of the cell (so no edge is built that adds nothing to the output, and none is missing).
    Before unread edges were dropped, |nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_3x3~1|none~2|
    built a 3x3 conv into node 2 that nothing reads: three convs where its function has two."""
    from nasforge.tables.nb201 import EDGES, named_cell_function

    mine, _ = spaces
    for tokens in ALL_TOKENS:
        names = [OPS[t] for t in tokens]
        function = named_cell_function(names)
        matters = {edge for k, edge in enumerate(EDGES) if names[k] != "none"
                   and named_cell_function(names[:k] + ["none"] + names[k + 1:]) != function}
        built = Cell(parse_cell(mine.arch_str(tokens)), 2)
        assert set(built.edges) == matters, mine.arch_str(tokens)
    # the docstring's example, by hand: one 3x3 conv (9*4 weights + BN 2*2) into node 1, none into node 2
    unread = Cell(parse_cell(mine.arch_str(cell(e10="nor_conv_3x3", e20="nor_conv_3x3", e31="nor_conv_3x3"))), 2)
    assert sum(p.numel() for p in unread.parameters()) == 2 * (9 * 4 + 4) and unread.edges == [(1, 0), (3, 1)]


def _every_edge_cell(text: str, channels: int) -> torch.nn.Module:
    """The reference: NAS-Bench-201's cell computed literally, every non-``none`` edge built and run."""
    from nasforge.spaces.cell_net import edge_op

    class Literal(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.edges = [(to, src, op) for to, src, op in parse_cell(text) if op != "none"]
            self.ops = torch.nn.ModuleDict({f"{to}{src}": edge_op(op, channels) for to, src, op in self.edges})

        def forward(self, x):
            nodes = [x] + [torch.zeros_like(x) for _ in range(3)]
            for to, src, _ in sorted(self.edges):
                nodes[to] = nodes[to] + self.ops[f"{to}{src}"](nodes[src])
            return nodes[3]

    return Literal()


def test_dropped_edges_do_not_change_what_a_cell_computes(spaces):
    """Every 23rd cell (680; 23 is prime to 5, so every edge takes every op) against the literal cell
    with the same weights. Fresh batch norm in eval mode maps 0 to 0, so the literal cell also
    keeps NB-201's rule that whatever is fed only by zeros is zero."""
    mine, _ = spaces
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 5)
    for tokens in ALL_TOKENS[::23]:
        text = mine.arch_str(tokens)
        pruned, literal = Cell(parse_cell(text), 3), _every_edge_cell(text, 3)
        for (to, src), op in zip(pruned.edges, pruned.ops):
            op.load_state_dict(literal.ops[f"{to}{src}"].state_dict())
        pruned.eval(), literal.eval()
        assert torch.allclose(pruned(x), literal(x), atol=1e-6), text
