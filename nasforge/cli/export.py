"""``nasforge export``: the retrained model as a standalone PyTorch module and ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Optional

from ..config import ConfigError
from .common import _open_store, _space_of, make_console
from .inspect import _pick_trial
from .retrain import load_search_data


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
    from ..build import no_network
    from .export_rule import cmd_export_optimizer

    if args.optimizer:
        return cmd_export_optimizer(args)
    if args.dataset and not args.int8:
        raise ConfigError("--dataset is read only with --int8 (to calibrate and check the int8 model)")
    if args.int8 and not 0 <= args.min_agreement <= 1:  # before anything is written or replaced
        raise ConfigError(f"--min-agreement must be a fraction in [0, 1] (0.95 asks for 95% of the test "
                          f"predictions), got {args.min_agreement:g}")
    experiment, store = _open_store(args.experiment, readonly=True)
    console = make_console()
    with store:
        config, space = _space_of(store)
        refusal = no_network(config["space"]["name"], space)
        if refusal:
            raise ConfigError(f"{experiment}: {refusal}")
        trial = _pick_trial(store, args.trial, config["reward"].get("direction", "maximize"))
        out = Path(args.out) if args.out else experiment / "export"
        _check_out(out, args.overwrite)
        data = load_search_data(config, args.dataset) if args.int8 else None  # found before anything is written
        runs = [e for e in store.evaluations("retrain") if e["trial_id"] == trial.id]
        if not runs:
            _refuse_unsavable(config, space, trial)
            raise ConfigError(f"trial {trial.number} has not been retrained yet: run `nasforge retrain` first "
                              "(the export is the retrained model, with the test accuracy retrain reports)")
        by_seed = {r["metrics"].get("seed", 0): r for r in runs}  # later runs replace earlier ones
        run = _seed_run(by_seed, args.seed, trial.number)
        model_dir = Path(run["metrics"]["model_dir"])
        if not model_dir.is_absolute() and not model_dir.exists():
            model_dir = experiment / "retrain" / model_dir.name  # stored relative to where retrain ran
        if not model_dir.exists():
            raise ConfigError(f"the retrained model of trial {trial.number} is not at {model_dir} any more; "
                              "run `nasforge retrain` again")
        model, meta = _load_retrained(config["space"]["name"], model_dir)
        prep = _preprocessing(model_dir, config, console)
        written = export_model(model, out, metadata={**meta, "experiment": str(experiment)},
                               preprocessing=prep, overwrite=args.overwrite)
        seeds = sorted(by_seed)
        acc = run["metrics"].get("test_acc")
        which = (f"seed {run['metrics'].get('seed', 0)}"
                 + (f", test accuracy {100 * acc:.2f}%" if isinstance(acc, (int, float)) else "")
                 + (f"; retrained seeds {', '.join(map(str, seeds))}, --seed chooses" if len(seeds) > 1 else ""))
        console.print(f"exported trial {trial.number} ({which}) to {out}; it takes the raw arrays of the data "
                      f"({prep.get('raw', config['dataset'])}): shape (batch, {', '.join(map(str, prep['raw_shape']))}), "
                      "preprocessing included:")
        for name, path in written.items():
            console.print(f"  {name}: {path}")
        if args.int8:
            _int8(model, out, data, args.min_agreement, console)
    return 0


def _refuse_unsavable(config, space, trial) -> None:
    """A trial never retrained: when the search's networks could not be saved either, say what the
    space must provide rather than "retrain first" (told where the search's data can be read)."""
    from ..build import unsavable_network
    from ..spaces.base import SPACES
    from .common import user_errors

    if config["space"]["name"] in SPACES.builtins:  # they all follow the protocol: no data to read for it
        return
    try:
        data = load_search_data(config)
    except user_errors():
        return
    refusal = unsavable_network(config["space"]["name"], space, trial.tokens, data.input_shape, data.num_classes)
    if refusal:
        raise ConfigError(refusal)


def _load_retrained(space_name: str, model_dir: Path):
    """The retrained model and its metrics; a spec no registered module builds is refused by name."""
    from ..report.model_files import load_model_dir
    from ..spaces.networks import PROTOCOL, NetworkProtocolError

    try:
        return load_model_dir(model_dir)
    except NetworkProtocolError as exc:
        raise ConfigError(f"space {space_name} cannot be exported: {model_dir / 'spec.json'}: {exc}; "
                          f"{PROTOCOL}") from None


def _seed_run(by_seed: Dict[int, Dict[str, Any]], seed: Optional[int], trial_number: int) -> Dict[str, Any]:
    """The retrain run to export: of seed ``seed``, else of the lowest seed retrained (the one a
    plain `retrain` uses), never the best on test, which would choose on the test split. A seed
    retrained twice has one model folder, the later run's (``by_seed`` keeps that one)."""
    if seed is None:
        return by_seed[min(by_seed)]
    if seed not in by_seed:
        raise ConfigError(f"trial {trial_number} was not retrained with seed {seed}; retrained seeds: "
                          f"{', '.join(map(str, sorted(by_seed)))}")
    return by_seed[seed]


def _int8(model, out: Path, data, min_agreement: float, console) -> None:
    """The int8 ONNX model beside the export, calibrated on training data, checked on the test split."""
    import numpy as np

    from ..report.export_int8 import export_int8

    pick = np.random.default_rng(0).permutation(len(data.x_train))[:512]
    r = export_int8(model, out, data.x_train[pick], data.x_test, data.y_test, min_agreement)
    console.print(f"int8 ({r['int8_file']}, onnxruntime static quantisation): agrees with the PyTorch network "
                  f"on {r['agreement']:.1%} of {r['test_examples']} test examples; test accuracy "
                  f"{r['int8_test_acc']:.4f} (PyTorch {r['torch_test_acc']:.4f}); latency {r['int8_latency_ms']:.3f} ms "
                  f"vs fp32 {r['fp32_latency_ms']:.3f} ms (batch 1, 1 thread); {r['int8_bytes']:,} vs "
                  f"{r['fp32_bytes']:,} bytes; written to int8.json. It takes the preprocessed float32 input "
                  "(preprocessing.json applied), not the raw arrays: see README.md")


def add_export_parser(subparsers) -> None:
    """Add ``export``."""
    e = subparsers.add_parser("export", help="write the retrained model as standalone PyTorch + ONNX")
    e.add_argument("--experiment", help="experiment directory (default: the latest search)")
    e.add_argument("--trial", type=int, help="trial number (default: the best)")
    e.add_argument("--out", help="output directory (default: <experiment>/export)")
    e.add_argument("--seed", type=int, help="which retrained seed's model (default: the lowest retrained, "
                                            "as a plain `retrain` makes seed 0)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing export")
    e.add_argument("--optimizer", action="store_true",
                   help="an update-rules search: write the rule as one torch.optim.Optimizer file (--out rule.py; "
                        "default <experiment>/optimizer.py)")
    e.add_argument("--int8", action="store_true", help="also write model_int8.onnx (onnxruntime static "
                   "quantisation calibrated on training data), checked against the network on the test split")
    e.add_argument("--dataset", metavar="PATH", help="with --int8: the search's data file, if it moved since the "
                   "search (checked against the stored fingerprint)")
    e.add_argument("--min-agreement", type=float, default=0.95,
                   help="with --int8: the least fraction (0 to 1) of test predictions on which the int8 model "
                   "must agree with the network, else the export is refused (default 0.95)")
    e.set_defaults(func=cmd_export)
