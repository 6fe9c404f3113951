"""``nasforge export``: the retrained model as a standalone PyTorch module and ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ConfigError
from .common import _open_store, _space_of, make_console
from .inspect import _pick_trial


def _check_out(out: Path, overwrite: bool) -> None:
    """Before anything else: an export never silently replaces files."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty; pass --overwrite to replace it, or --out to choose another folder")


def _preprocessing(model_dir: Path, config, console):
    """The preprocessing the model was trained behind: saved with it by retrain, or, for a model
    retrained before records were kept, the record of the search's data (checked by fingerprint)."""
    from ..data.datasets import load_dataset
    from ..report.model_files import load_preprocessing

    prep = load_preprocessing(model_dir)
    if prep is not None:
        return prep
    again = f"{model_dir} was retrained before its data preprocessing was saved"
    try:
        data = load_dataset(config["dataset"])
    except Exception as exc:  # noqa: BLE001 - any reason the data cannot be had: one way forward
        raise ConfigError(f"{again}, and the search's data cannot be read to recover it ({exc}); "
                          "run `nasforge retrain` again") from None
    if not config.get("data_fingerprint") or data.fingerprint() != config["data_fingerprint"]:
        raise ConfigError(f"{again}, and {config['dataset']} cannot be shown to be the search's data; "
                          "run `nasforge retrain` again")
    console.print(f"{model_dir} has no saved preprocessing (retrained by an older nasforge); "
                  f"using the record of {config['dataset']}, whose fingerprint matches the search's")
    return data.preprocessing


def cmd_export(args: argparse.Namespace) -> int:
    from ..report.export import export_model
    from ..report.model_files import load_model_dir

    experiment, store = _open_store(args.experiment, readonly=True)
    console = make_console()
    with store:
        config, space = _space_of(store)
        trial = _pick_trial(store, args.trial, config["reward"].get("direction", "maximize"))
        out = Path(args.out) if args.out else experiment / "export"
        _check_out(out, args.overwrite)
        runs = [e for e in store.evaluations("retrain") if e["trial_id"] == trial.id]
        if not runs:
            raise ConfigError(f"trial {trial.number} has not been retrained yet: run `nasforge retrain` first "
                              "(the export is the retrained model, with the test accuracy retrain reports)")
        model_dir = Path(runs[-1]["metrics"]["model_dir"])
        if not model_dir.is_absolute() and not model_dir.exists():
            model_dir = experiment / "retrain" / model_dir.name  # stored relative to where retrain ran
        if not model_dir.exists():
            raise ConfigError(f"the retrained model of trial {trial.number} is not at {model_dir} any more; "
                              "run `nasforge retrain` again")
        model, meta = load_model_dir(model_dir)
        prep = _preprocessing(model_dir, config, console)
        written = export_model(model, out, metadata={**meta, "experiment": str(experiment)},
                               preprocessing=prep, overwrite=args.overwrite)
        console.print(f"exported trial {trial.number} to {out}; it takes the raw arrays of the data "
                      f"({prep.get('raw', config['dataset'])}): shape (batch, {', '.join(map(str, prep['raw_shape']))}), "
                      "preprocessing included:")
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
