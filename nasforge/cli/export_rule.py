"""``nasforge export --optimizer``: a rule found by an ``update-rules`` search as one standalone
optimiser file (``quant/rule_export.py`` writes it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..build import is_rule_space
from ..config import ConfigError
from .common import _open_store, _space_of, make_console
from .inspect import _pick_trial

#: What the docstring reports of the trial (those it has).
REPORTED = ("val_acc", "val_acc_last", "val_acc_history", "train_loss", "epochs", "weight_bits", "params")


def cmd_export_optimizer(args: argparse.Namespace) -> int:
    from ..quant.rule_export import optimizer_source, write_optimizer

    experiment, store = _open_store(args.experiment, readonly=True)
    with store:
        config, space = _space_of(store)
        if not is_rule_space(space):
            raise ConfigError(f"{experiment} searched the {space.name} space, not update rules: --optimizer exports "
                              "a rule found by `nasforge search --space update-rules`; leave it out to export a network")
        trial = _pick_trial(store, args.trial, config["reward"].get("direction", "maximize"), final=False)
    out = Path(args.out) if args.out else experiment / "optimizer.py"
    if out.is_dir() or out.suffix != ".py":
        raise ConfigError(f"--out {out}: the optimiser is one Python file; name it like rule.py")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it, or --out to choose another file")
    groups, lr = space.rule(space.canonical(trial.tokens))  # unread groups zeroed: the same updates
    results = {k: trial.metrics[k] for k in REPORTED if k in trial.metrics}
    source = [f"Search: experiment {experiment}, trial {trial.number}, dataset {config.get('dataset')},",
              f"space settings (child null: the space's default chain of convolutions): {space.config()}"]
    text = optimizer_source(trial.tokens, groups, lr, space.weight_bits, space.constants, results, source)
    write_optimizer(out, text)
    make_console().print(f"exported the rule of trial {trial.number} ({space.summary(trial.tokens)}) to {out}: "
                         "class FoundRule(torch.optim.Optimizer), imports only torch")
    return 0

