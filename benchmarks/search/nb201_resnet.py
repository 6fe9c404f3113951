"""The hand-designed baseline for ``nb201-cell`` (issue 19): a small ResNet on the same skeleton.

A ResNet basic block is an NAS-Bench-201 cell: node 1 and node 2 apply two 3 x 3 convolutions
in a chain and node 3 adds the cell's input to them (``x + conv3x3(conv3x3(x))``). In the space's
skeleton (a stem, three stages of ``cells_per_stage`` cells, residual reduction blocks between,
global pooling and a linear classifier) that cell makes the whole network a ResNet of basic
blocks, the hand-designed reference NAS-Bench-201's own paper compares with. Its width sweep is the
stem's ``channels`` (8 is the space's default, the width every search child has).

``--retrain`` trains each width as ``nasforge retrain`` does (its recipe, on train+validation)
and tests it; without it, one child per width is trained as a search trains children.
``--table-rank`` trains nothing: it says where the ResNet cell stands among the table's 4,930
distinct cells (``nb201-cifar10``), i.e. how hard the baseline is to beat inside this space.
``--cell table-best`` trains the table's best cell instead of the ResNet cell, the same way: what
a search that found the space's best (by CIFAR-10) would get on the user's data.

    python benchmarks/search/nb201_resnet.py [--dataset mnist5k] [--channels 8 12] [--seeds 0]
        [--epochs N] [--retrain | --table-rank] [--cell resnet|table-best]
"""

from __future__ import annotations

import argparse
import json

from mobile_hand_designed import measure  # benchmarks/search/mobile_hand_designed.py
from nb201_table_to_real import distinct_ranked  # benchmarks/search/nb201_table_to_real.py
from nasforge.data import load_dataset
from nasforge.spaces.base import SPACES
from nasforge.spaces.nb201_cell import NB201CellSpace
from nasforge.tables.nb201 import EDGES

RESNET_CELL = {(1, 0): "nor_conv_3x3", (2, 1): "nor_conv_3x3", (3, 0): "skip_connect", (3, 2): "skip_connect"}


def tokens(space: NB201CellSpace):
    """The ResNet cell in the space's canonical tokens (every other edge is ``none``)."""
    return space.canonical(tuple(space.decisions[i].choices.index(RESNET_CELL.get(edge, "none"))
                                 for i, edge in enumerate(EDGES)))


def table_rank(metric: str = "val_acc") -> dict:
    """The ResNet cell's table row against the table's distinct cells (each at its best row), by
    ``metric``: how many cells of the space are better than the baseline on CIFAR-10."""
    table = SPACES.create("nb201-cifar10")
    ranked = distinct_ranked(table, metric)
    cell = tokens(NB201CellSpace())
    value = table.lookup(cell)[metric]
    return {"cell": table.arch_str(cell), "metric": metric, "value": value,
            "rank": 1 + sum(other > value for _, other in ranked), "of": len(ranked),
            "best": ranked[0][1], "best_cell": table.arch_str(ranked[0][0])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--channels", type=int, nargs="+", default=[8])
    parser.add_argument("--cells-per-stage", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, help="default: the search's (8), or with --retrain nasforge retrain's")
    parser.add_argument("--retrain", action="store_true", help="the final recipe on train+validation, tested")
    parser.add_argument("--table-rank", action="store_true", help="the cell's rank on nb201-cifar10; trains nothing")
    parser.add_argument("--cell", choices=["resnet", "table-best"], default="resnet")
    args = parser.parse_args()
    if args.table_rank:
        print(json.dumps(table_rank()))
        return
    data = load_dataset(args.dataset)
    # the cell's tokens do not depend on the skeleton's width: chosen once, not per width
    cell = (tokens(NB201CellSpace()) if args.cell == "resnet"
            else distinct_ranked(SPACES.create("nb201-cifar10"), "val_acc")[0][0])
    for channels in args.channels:
        space = NB201CellSpace(cells_per_stage=args.cells_per_stage, channels=channels)
        for seed in args.seeds:
            result = measure(space, cell, args.dataset, data, seed, args.epochs, args.retrain)
            print(json.dumps({"cell": args.cell, "channels": channels, **result}), flush=True)


if __name__ == "__main__":
    main()
