"""Choose `nasforge retrain`'s recipe on the validation split, never the test split.

For each experiment given, its best architecture is trained with each recipe on the training
split that the search used (the validation signals held out) and scored on those validation
signals. The recipes differ in epochs, random circular shifts and label smoothing; everything
else is the search's child training.

    python benchmarks/search/retrain_recipes.py benchmarks/results/quickstart-b300/reinforce-seed0 ... \\
        [--recipes plain smooth shift3-e120 shift3-smooth-e120] [--seeds 0 1 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from nasforge.data import load_dataset
from nasforge.estimators.train import retrain_recipe
from nasforge.final_selection import validation_score
from nasforge.spaces.base import space_of_section
from nasforge.store import Store

RECIPES = {
    "plain": dict(epochs=60),
    "shift3": dict(epochs=60, shift=3),
    "shift3-e120": dict(epochs=120, shift=3),
    "shift5-e120": dict(epochs=120, shift=5),
    "smooth": dict(epochs=60, label_smoothing=0.1),
    "smooth0.2": dict(epochs=60, label_smoothing=0.2),
    "smooth-e120": dict(epochs=120, label_smoothing=0.1),
    "shift3-smooth": dict(epochs=60, shift=3, label_smoothing=0.1),
    "shift3-smooth-e120": dict(epochs=120, shift=3, label_smoothing=0.1),
    "smooth-wd0.05": dict(epochs=60, label_smoothing=0.1, weight_decay=0.05),
    "smooth-bs32": dict(epochs=60, label_smoothing=0.1, batch_size=32),
    "smooth-ema": dict(epochs=60, label_smoothing=0.1, ema=0.998),
    "smooth-mixup": dict(epochs=60, label_smoothing=0.1, mixup=0.2),
    "mixup": dict(epochs=60, mixup=0.2),
}


def validation_accuracy(experiment: Path, recipe: dict, seed: int) -> float:
    """The experiment's best architecture trained with ``recipe`` on the search's training split,
    scored on its validation split."""
    with Store(experiment / "trials.sqlite", create=False) as store:
        config = store.config()
        best = store.best(1)[0]
    training = config["training"]
    # the search's child training, with no shift or label smoothing unless the recipe names them
    settings = replace(retrain_recipe(training, shift=0, label_smoothing=0.0), **recipe)
    settings.check()
    data = load_dataset(config["dataset"])  # cached on disk after the first load
    return validation_score(space_of_section(config["space"]), best.tokens, data, training, settings, seed)["val_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", type=Path)
    parser.add_argument("--recipes", nargs="+", default=["plain", "smooth", "shift3-e120", "shift3-smooth-e120"],
                        choices=sorted(RECIPES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrain_recipes.json"))
    args = parser.parse_args()
    rows = []
    for experiment in args.experiments:
        for name in args.recipes:
            for seed in args.seeds:
                start = time.perf_counter()
                acc = validation_accuracy(experiment, RECIPES[name], seed)
                rows.append({"experiment": str(experiment), "recipe": name, "seed": seed, "val_acc": acc,
                             "seconds": time.perf_counter() - start})
                print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M %z"), "recipes": RECIPES,
                                    "rows": rows}, indent=1))
    print("\n| recipe | validation accuracy, mean (n) | per experiment |\n| --- | --- | --- |")
    for name in args.recipes:
        accs = [r["val_acc"] for r in rows if r["recipe"] == name]
        per = [statistics.mean(r["val_acc"] for r in rows if r["recipe"] == name and r["experiment"] == str(e))
               for e in args.experiments]
        print(f"| {name} | {100 * statistics.mean(accs):.2f}% ({len(accs)}) | "
              f"{', '.join(f'{100 * p:.2f}' for p in per)} |")


if __name__ == "__main__":
    main()
