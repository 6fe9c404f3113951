"""Where a child's time goes: building it, counting its FLOPs, its first and second epoch, and
one validation pass, for children drawn from a stored search.

Answers whether a pruned child (one epoch) pays a fixed overhead that a fully trained one spreads
over eight: if its first epoch cost more than its second, or building and counting were large.

    python benchmarks/speed/child_costs.py benchmarks/results/quickstart-asha/reinforce-seed0 [--children 40]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from nasforge.data import load_dataset
from nasforge.estimators.train import TrainRecipe, predict, search_split, train_network
from nasforge.objectives.hardware import count_flops
from nasforge.spaces.base import space_of_section
from nasforge.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--children", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="which children are drawn")
    args = parser.parse_args()
    with Store(args.experiment / "trials.sqlite", create=False) as store:
        config = store.config()
        tokens = [tuple(t.tokens) for t in store.trials()]
    space = space_of_section(config["space"])
    data = load_dataset(config["dataset"])
    (x, y), (xv, _) = search_split(data, config["training"])
    xv = torch.as_tensor(xv)
    one_epoch = TrainRecipe(epochs=1)
    totals = {"build_ms": 0.0, "flops_ms": 0.0, "epoch1_ms": 0.0, "epoch2_ms": 0.0, "validation_ms": 0.0}
    sample = random.Random(args.seed).sample(tokens, min(args.children, len(tokens)))
    # the FLOP counter's first use in a process costs about a second (imports); a search pays it
    # once per worker, not per child, so it is paid here before the clock starts
    count_flops(space.build(sample[0], data.input_shape, data.num_classes), data.input_shape)
    for t in sample:
        marks = [time.perf_counter()]
        torch.manual_seed(0)
        model = space.build(t, data.input_shape, data.num_classes)
        marks.append(time.perf_counter())
        count_flops(model, data.input_shape)
        marks.append(time.perf_counter())
        train_network(model, x, y, one_epoch, 0, torch.device("cpu"))
        marks.append(time.perf_counter())
        train_network(model, x, y, one_epoch, 1, torch.device("cpu"))
        marks.append(time.perf_counter())
        predict(model, xv)
        marks.append(time.perf_counter())
        for key, start, end in zip(totals, marks, marks[1:]):
            totals[key] += (end - start) * 1000
    print(json.dumps({"experiment": str(args.experiment), "children": len(sample), "threads": torch.get_num_threads(),
                      **{k: round(v / len(sample), 1) for k, v in totals.items()}}, indent=1))


if __name__ == "__main__":
    main()
