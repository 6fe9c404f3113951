"""``nasforge tabulate``: train a sample (or all) of a space with one recipe and write a benchmark table.

The training is an ordinary search (so it is stored, and resumable after a crash or Ctrl+C, with
``--resume``): strategy ``random`` (no repeated architecture) for ``--sample N``, strategy
``enumerate`` for ``--all``, ``[training] estimator = "train-and-test"`` (the ``train`` recipe,
plus test accuracy of the same weights and batch-1 latency), and the ``inline`` executor (one child at a time, so that no other
trial competes with a latency measurement). When the search is done, the completed trials
become the table file (``nasforge/tables/table_file.py`` documents the format), which the
``own-table`` space reads: ``--space own-table --set space.table=FILE`` on ``search``,
``--table FILE`` on ``benchmark``. Everything that can be refused (the ``--out`` path, a space
that builds no network, a table file another experiment wrote) is refused before any training.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any, Dict, List

from ..config import ConfigError, SearchConfig, parse_value

ENUMERATE_LIMIT = 200_000  # token sequences that --all may walk (checking each is cheap, not free)
TRAINING_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "learning_rate",
                  "val_fraction": "val_fraction", "device": "device"}


def _config_from_args(args: argparse.Namespace) -> SearchConfig:
    from ..estimators.train_and_test import NAME

    config = SearchConfig()
    config.dataset = args.dataset or "mnist1d"
    config.seed = args.seed if args.seed is not None else 0
    config.space = {"name": args.space or "chain-cnn"}
    if args.layers is not None:
        config.space["num_layers"] = args.layers
    elif config.space["name"] == "chain-cnn":
        config.space["num_layers"] = 4
    config.training = {"estimator": NAME, "epochs": 8}
    for attr, key in TRAINING_FLAGS.items():
        if getattr(args, attr) is not None:
            config.training[key] = getattr(args, attr)
    for item in args.set or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: use SECTION.KEY=VALUE, for example training.weight_decay=0")
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        if section not in ("space", "training"):
            raise ConfigError(f"--set {item!r}: tabulate takes space.* and training.* settings only")
        if section == "training" and name == "estimator":
            raise ConfigError("--set training.estimator: tabulate always trains with train-and-test")
        getattr(config, section)[name] = parse_value(value)
    config.strategy = {"name": "enumerate"} if args.all else {"name": "random", "dedup": True}
    config.reward = {"metric": "val_acc", "transform": "identity"}
    config.execution = {"name": "inline"}  # one trial at a time, so latency is timed on a quiet process
    return config


def _explicit_settings(args: argparse.Namespace, config: SearchConfig):
    """(name, stored value, given value) for every setting the user gave on the command line."""
    given = _config_from_args(args)
    if args.dataset is not None:
        yield "dataset", config.dataset, given.dataset
    if args.seed is not None:
        yield "seed", config.seed, given.seed
    if args.space is not None:
        yield "space.name", config.space.get("name"), given.space["name"]
    if args.layers is not None:
        yield "space.num_layers", config.space.get("num_layers"), args.layers
    for attr, key in TRAINING_FLAGS.items():
        if getattr(args, attr) is not None:
            yield f"training.{key}", config.training.get(key), getattr(args, attr)
    for item in args.set or []:
        section, name = item.split("=", 1)[0].split(".", 1)
        yield f"{section}.{name}", getattr(config, section).get(name), getattr(given, section)[name]


def _budget(config: SearchConfig, args: argparse.Namespace) -> int:
    from ..build import build_space, is_tabular
    from ..spaces.base import SearchSpace
    from ..strategies.enumerate_space import count_architectures

    if is_tabular(config.space["name"]):
        raise ConfigError(f"{config.space['name']} is already a table; tabulate trains a trainable space")
    space = build_space(config, None)
    if type(space).build is SearchSpace.build:  # every trial would fail: say so before any is run
        raise ConfigError(f"{config.space['name']} cannot be tabulated: it builds no trainable network "
                          "(tabulate trains each architecture as a network; choose a space such as chain-cnn)")
    if args.all:
        return count_architectures(space, ENUMERATE_LIMIT)
    if args.sample < 1:
        raise ConfigError(f"--sample must be at least 1, got {args.sample}")
    return args.sample


def _stored_config(experiment: Path) -> Dict[str, Any]:
    from ..search import store_path
    from ..stored_config import read_config
    from ..store import Store

    path = store_path(experiment)
    if not path.exists():
        raise ConfigError(f"nothing to resume: no store at {path}")
    with Store(path, create=False, readonly=True) as store:
        stored = read_config(store)
    if stored is None or stored.get("training", {}).get("estimator") != "train-and-test":
        raise ConfigError(f"{experiment} was not made by nasforge tabulate (no train-and-test trials)")
    stored.pop("data_fingerprint", None)
    return stored


def table_rows(experiment: Path) -> Dict[str, Any]:
    """Header facts and rows from an experiment's completed trials (first trial of each architecture)."""
    from ..data.datasets import load_dataset
    from ..search import store_path
    from ..stored_config import read_config
    from ..spaces.base import space_of_section
    from ..store import Store

    with Store(store_path(experiment), create=False, readonly=True) as store:
        config = read_config(store)
        trials = store.trials()
        # per budget slot, by its final attempt: an interrupted attempt that was run again is no failure
        failed = store.final_states().get("FAILED", 0)
    data = load_dataset(config["dataset"])
    space = space_of_section(config["space"])
    rows: List[Dict[str, Any]] = []
    seen = set()
    for t in sorted((t for t in trials if t.state == "COMPLETE"), key=lambda t: (t.number, t.attempt)):
        digest = space.arch_hash(t.tokens)
        if digest in seen:
            continue
        seen.add(digest)
        m = t.metrics
        if "test_acc" not in m:
            raise ConfigError(f"trial {t.number} has no test accuracy: {experiment} was not made by tabulate")
        rows.append({"tokens": list(space.canonical(t.tokens)), "val_acc": m["val_acc"],
                     "val_acc_last": m["val_acc_last"], "test_acc": m["test_acc"], "params": m["params"],
                     "flops": m["flops"], "latency_ms": m["latency_ms"], "train_seconds": m["train_seconds"],
                     "seed": t.seed, "trial": t.number})
    return {"config": config, "space": space, "data": data, "rows": rows, "failed": failed}


def write_experiment_table(experiment: Path, out: Path) -> Dict[str, Any]:
    """Turn a finished (or partly finished) tabulate experiment into a table file."""
    import torch

    from .. import __version__
    from ..tables.table_file import write_table
    from ..data.datasets import split_validation
    from ..estimators.train_and_test import TrainAndTestEstimator

    facts = table_rows(experiment)
    config, space, rows = facts["config"], facts["space"], facts["rows"]
    if not rows:
        raise ConfigError(f"{experiment} holds no completed architecture yet; nothing to tabulate")
    data = facts["data"]
    estimator = TrainAndTestEstimator(dataset=config["dataset"], **config["training"])
    (_, y_train), (_, y_val) = split_validation(data.x_train, data.y_train, estimator.val_fraction,
                                                estimator.split_seed)
    header = {
        "nasforge_version": __version__,
        "space": {"name": config["space"]["name"], **space.config()},
        "decisions": [d.name for d in space.decisions],
        "dataset": {"name": config["dataset"], "fingerprint": config.get("data_fingerprint"),
                    "train": int(len(y_train)), "val": int(len(y_val)), "test": int(len(data.y_test))},
        "recipe": {k: v for k, v in estimator.settings().items() if k != "dataset"},
        "estimator": config["training"].get("estimator"),
        "seed": config["seed"],
        "strategy": config["strategy"],
        "failed": facts["failed"],
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "torch": torch.__version__, "threads_latency": 1},
        "created": time.strftime("%Y-%m-%d"),
        "experiment": str(experiment.resolve()),  # whose table it is: its --resume may rewrite it
    }
    write_table(out, header, rows)
    return {"rows": len(rows), "failed": facts["failed"], "path": out}


def check_out(out: Path, experiment: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an --out that cannot be written, or that holds something not this experiment's to
    replace, before any training: the table is written only when every architecture is trained.
    A missing folder is fine when it can be made (it is, when the table is written)."""
    from ..tables.table_file import SUFFIX, TableFileError, read_header
    from .common import check_output_file

    check_output_file(out, "--out", "table" + SUFFIX)  # a folder, or a place nothing can be written
    if not out.name.endswith(SUFFIX):
        raise ConfigError(f"--out {out}: a table file is gzipped JSON lines, named *{SUFFIX}; "
                          f"give a name such as {out.with_name(out.name.split('.')[0] + SUFFIX)}")
    if not (out.exists() or out.is_symlink()) or overwrite:
        return
    if not out.is_file():
        raise ConfigError(f"cannot write {out}: it exists and is not a file")
    try:
        header = read_header(out)
    except TableFileError:
        raise ConfigError(f"--out {out} already exists and is not a nasforge table; choose another --out, or "
                          "add --overwrite to replace it") from None
    made_by = header.get("experiment")
    if resume and made_by == str(experiment.resolve()):
        return  # this experiment's own table, written again with the architectures trained since
    by = f"experiment {made_by}" if made_by else "an unrecorded experiment"
    raise ConfigError(f"--out {out} already holds a table of {header.get('rows', '?')} architectures made by {by}; "
                      "choose another --out, or add --overwrite to replace it")


def cmd_tabulate(args: argparse.Namespace) -> int:
    from .common import make_console, run_until_stopped
    from ..search import run_search

    console = make_console()
    experiment = Path(args.experiment)
    if args.resume:
        config = SearchConfig.from_dict(_stored_config(experiment))
        config.execution = {"name": "inline"}
        if args.all != (config.strategy["name"] == "enumerate"):
            raise ConfigError(f"{experiment} was made with {'--all' if not args.all else '--sample'}; "
                              "resume it the same way")
        for name, stored, now in _explicit_settings(args, config):
            if stored != now:
                raise ConfigError(f"cannot resume with other settings: {name} is {stored!r} in {experiment}, "
                                  f"{now!r} now")
    else:
        config = _config_from_args(args)
    config.budget = _budget(config, args)
    out = Path(args.out)
    check_out(out, experiment, args.resume, args.overwrite)
    console.print(f"[bold]nasforge tabulate[/] -> {experiment}: {config.budget} architectures of "
                  f"{config.space['name']} {dict((k, v) for k, v in config.space.items() if k != 'name')} "
                  f"on {config.dataset}, recipe {config.training}")

    def progress(p) -> None:
        t = p.last
        if t is not None and not args.quiet:
            acc = "-" if t.state != "COMPLETE" else f"val {100 * t.metrics['val_acc']:.1f}% " \
                  f"test {100 * t.metrics['test_acc']:.1f}%"
            console.print(f"{p.done:>5}/{p.budget}  trial {t.number:>4} {t.state:<8} {acc}  "
                          f"{t.duration or 0:.1f}s" + (f"  {t.error}" if t.error else ""))

    _, code = run_until_stopped(
        console, "tabulate", lambda: run_search(config, experiment, resume=args.resume, on_progress=progress),
        f"continue with `nasforge tabulate --resume --experiment {experiment} "
        f"{'--all' if args.all else f'--sample {config.budget}'} --out {out}"
        f"{' --overwrite' if args.overwrite else ''}`", experiment)
    if code:
        return code
    written = write_experiment_table(experiment, out)
    console.print(f"wrote {written['rows']} architectures ({written['failed']} failed) to {out}")
    return 0


def add_tabulate_parser(subparsers) -> None:
    from ..config import BUILTIN_DATASETS
    from .search import names_text

    t = subparsers.add_parser(
        "tabulate", help="train a sample (or all) of a space and write a tabular benchmark file",
        description="Train architectures of a space with one fixed recipe (resumable), then write their "
                    "validation and test accuracy, parameters, FLOPs, latency and training time to a table "
                    "that the own-table space reads.")
    t.add_argument("--experiment", required=True, help="directory for the training store (resume from it)")
    t.add_argument("--out", required=True, help="table file to write (.jsonl.gz); an existing file is "
                                                "replaced only by --resume of the experiment that made it, "
                                                "or with --overwrite")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an --out file that another experiment (or anything else) wrote")
    what = t.add_mutually_exclusive_group(required=True)
    what.add_argument("--sample", type=int, help="train this many distinct random architectures")
    what.add_argument("--all", action="store_true",
                      help=f"train every architecture (spaces of at most {ENUMERATE_LIMIT:,} token sequences)")
    t.add_argument("--resume", action="store_true", help="continue the experiment (a larger --sample extends it)")
    t.add_argument("--dataset", metavar="NAME|FILE",
                   help=f"built-in: {names_text(BUILTIN_DATASETS, 'mnist1d')}; or a path to your .npz file")
    t.add_argument("--space", metavar="NAME", help="a trainable search space (default chain-cnn)")
    t.add_argument("--layers", type=int, help="chain-cnn: number of layers (default 4 here, as in the shipped "
                                              "mnist1d-chain table; `nasforge search` defaults to 6)")
    t.add_argument("--seed", type=int, help="seed of the sample and of each child's training (default 0)")
    t.add_argument("--epochs", type=int, help="epochs per architecture (default 8)")
    t.add_argument("--batch-size", type=int, help="minibatch size (64)")
    t.add_argument("--lr", type=float, help="learning rate (0.003)")
    t.add_argument("--val-fraction", type=float, help="share of the training data held out for val_acc (0.2)")
    t.add_argument("--device", help="auto (default), cpu or cuda")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="other settings of the space or of the training (SECTION is space or training, as on "
                        "`search`), e.g. --set training.weight_decay=0 (repeatable)")
    t.add_argument("--quiet", action="store_true", help="no line per architecture")
    t.set_defaults(func=cmd_tabulate)
