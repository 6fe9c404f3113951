"""A found update rule exported as one file (issue 17.3a): the file, imported by a fresh
interpreter, loads no nasforge module and performs the interpreter's updates; the real CLI
searches update rules (``--resume``, ``trials``, ``best``), exports the best as a file, and refuses
an experiment that searched networks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasforge.quant.fake import weight_levels
from nasforge.quant.rule_export import optimizer_source, write_optimizer
from nasforge.quant.rules import RuleOptimizer
from nasforge.spaces.update_rules import REFERENCE_RULES, UpdateRuleSpace
from tests.cli_paths import nasforge

FRESH = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("found_rule", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
loaded = sorted(k for k in sys.modules if k.startswith("nasforge"))
w0, grads = torch.load(sys.argv[2])
p = torch.nn.Parameter(w0.clone())
opt = module.FoundRule([p])
out = []
for g in grads:
    p.grad = g.clone()
    opt.step()
    out.append(p.detach().clone())
torch.save({"out": out, "loaded": loaded, "base": isinstance(opt, torch.optim.Optimizer)}, sys.argv[3])
"""

# a rule that reads the quantised weight, so that the copied rounding is exercised too
W_Q_RULE = ([("w", "w_q", "identity", "identity", "subtract"), ("r1", "m_hat", "identity", "sign", "add")], 0.01)


@pytest.mark.parametrize("name, bits", [("adam", 1), ("bop", 1), ("w_q", 1), ("w_q", 2)])
def test_the_exported_file_performs_the_interpreters_updates(tmp_path, name, bits):
    space = UpdateRuleSpace(weight_bits=bits, tau=1e-3)
    groups, lr = W_Q_RULE if name == "w_q" else REFERENCE_RULES[name]
    tokens = space.tokens_for(groups, lr)
    text = optimizer_source(tokens, *space.rule(tokens), bits, space.constants, {"val_acc": 0.5}, ["test"])
    path = write_optimizer(tmp_path / "rule.py", text)
    gen = torch.Generator().manual_seed(0)
    w0, grads = torch.randn(5, 3, 2, generator=gen), [torch.randn(5, 3, 2, generator=gen) for _ in range(8)]
    torch.save((w0, grads), tmp_path / "in.pt")
    run = subprocess.run([sys.executable, "-I", "-c", FRESH, str(path), str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = torch.load(tmp_path / "out.pt")
    assert got["loaded"] == [] and got["base"]
    p = torch.nn.Parameter(w0.clone())
    c = space.constants
    opt = RuleOptimizer([p], *space.rule(tokens), quantise=lambda w: weight_levels(w, bits),
                        betas=(c["beta1"], c["beta2"]), gamma=c["gamma"], tau=c["tau"], eps=c["eps"])
    for g, theirs in zip(grads, got["out"]):
        p.grad = g.clone()
        opt.step()
        torch.testing.assert_close(theirs, p.detach(), rtol=0, atol=0)
    assert "Tokens: " + str(list(tokens)) in text and "val_acc: 0.5" in text


def test_an_exported_file_that_would_import_more_than_torch_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="only torch"):
        write_optimizer(tmp_path / "rule.py", "import torch\nimport numpy\n")
    assert not (tmp_path / "rule.py").exists()


def test_cli_search_resume_best_and_export_of_a_rule(tmp_path: Path):
    common = ["--space", "update-rules", "--set", "space.child_layers=2", "--dataset", "digits", "--epochs", "1",
              "--strategy", "random", "--executor", "inline"]
    run = nasforge(["search", *common, "--set", "space.weight_bits=1", "--budget", "2", "--experiment", "exp"], tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    more = nasforge(["search", *common, "--set", "space.weight_bits=1", "--budget", "3", "--experiment", "exp",
                     "--resume"], tmp_path)
    assert more.returncode == 0, more.stderr + more.stdout
    rows = json.loads(nasforge(["trials", "--json"], tmp_path).stdout)
    assert len(rows) == 3 and {r["state"] for r in rows} <= {"COMPLETE", "FAILED"}
    best = nasforge(["best"], tmp_path)
    assert best.returncode == 0 and "update: w <- w -" in best.stdout
    export = nasforge(["export", "--optimizer", "--out", "rule.py"], tmp_path)
    assert export.returncode == 0, export.stderr
    assert "class FoundRule(RuleOptimizer)" in (tmp_path / "rule.py").read_text()
    again = nasforge(["export", "--optimizer", "--out", "rule.py"], tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    network = nasforge(["export"], tmp_path)
    assert network.returncode == 2 and "--optimizer" in network.stderr
    retrain = nasforge(["retrain"], tmp_path)
    assert retrain.returncode == 2 and "optimiser" in retrain.stderr and "Traceback" not in retrain.stderr


def test_cli_export_optimizer_refuses_a_network_search(tmp_path: Path):
    run = nasforge(["search", "--space", "nb201-cifar10", "--budget", "2", "--experiment", "nets"], tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    export = nasforge(["export", "--optimizer", "--out", "rule.py"], tmp_path)
    assert export.returncode == 2 and "not update rules" in export.stderr and "Traceback" not in export.stderr
    assert not (tmp_path / "rule.py").exists()
