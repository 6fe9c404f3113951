"""``nasforge export``: the retrained model as a standalone PyTorch module and ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import _open_store, _space_of, make_console
from .inspect import _pick_trial
from .retrain import _retrain

def cmd_export(args: argparse.Namespace) -> int:
    from ..report.export import export_model
    from ..report.model_files import load_model_dir

    experiment, store = _open_store(args.experiment)
    console = make_console()
    with store:
        config, space = _space_of(store)
        trial = _pick_trial(store, args.trial, config["reward"].get("direction", "maximize"))
        runs = [e for e in store.evaluations("retrain") if e["trial_id"] == trial.id]
        if runs:
            model_dir = Path(runs[-1]["metrics"]["model_dir"])
        else:
            console.print(f"trial {trial.number} has not been retrained yet; retraining it now "
                          "(use `nasforge retrain` to choose epochs and seeds)")
            _, _, model_dir = _retrain(experiment, store, trial, [0], console, None)
        model, meta = load_model_dir(model_dir)
        import torch

        example = torch.zeros((2, model.spec["in_channels"], *model.spec["input_size"]))
        out = Path(args.out) if args.out else experiment / "export"
        written = export_model(model, out, example, metadata={**meta, "experiment": str(experiment)},
                               overwrite=args.overwrite)
        console.print(f"exported trial {trial.number} to {out}:")
        for name, path in written.items():
            console.print(f"  {name}: {path}")
    return 0


def add_export_parser(subparsers) -> None:
    """Add ``export``."""
    e = subparsers.add_parser("export", help="write the retrained model as standalone PyTorch + ONNX")
    e.add_argument("--experiment", help="experiment directory (default: the latest search)")
    e.add_argument("--trial", type=int, help="trial number (default: the best)")
    e.add_argument("--out", help="output directory (default: <experiment>/export)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing export")
    e.set_defaults(func=cmd_export)
