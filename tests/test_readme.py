"""The README's code blocks, extracted from README.md and run, so that the README cannot drift
from the code (issue 13, "How it is checked").

- Every line of every ```bash block is a command. ``bash run.sh X ...`` runs as ``nasforge X ...``
  (what the README says it is once set up; run.sh's own set-up is not what is tested here), a
  ``nasforge ...`` line as it is. They run in README order in one fresh folder, so that
  ``runs/latest`` carries a search to the lines after it, as it would for a reader following along.
- The ```python block is written to ``script.py`` and run as ``python script.py`` in a fresh folder,
  exactly as written except for the budget number.
- The ```toml block is written to the file its first line names and run by the command that line
  gives (``nasforge search --config search.toml``) in a fresh folder, with ``--budget 2``
  (flags override the file, as the README says).

:data:`COMMANDS` lists every command the README holds, with how it is run: the flags appended to
shrink it (and why), or why it is skipped, and what its output must show. A command added to,
changed in or removed from the README makes :func:`test_readme_commands_are_the_known_ones` fail
(and the changed command's own test), so that each one is looked at, not silently run or dropped.

Cost: the default run covers the Quick start chain, the tabular trio, the Python API and the TOML
file; the other blocks' real searches (tens of seconds each on two cores) are marked slow
(``pytest -m slow``). The command list itself is always checked.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from cli_paths import json_out, nasforge, ok, python, shown

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)

#: A real chain-cnn search in seconds, not hours: 2 children of 2 layers, 1 epoch each (the
#: defaults are 300 children of 6 layers, 8 epochs each). Appended: argparse keeps the last value.
TINY = ("--budget", "2", "--epochs", "1", "--layers", "2")
TINY_WHY = "default budget 300 x 8 epochs x 6 layers is hours; 2 x 1 x 2 walks the same code"


@dataclass
class Command:
    #: flags appended to the README's command
    extra: Sequence[str] = ()
    #: why the extra flags are needed (required when there are any)
    why: str = ""
    #: regular expressions the command's stdout must match
    expect: Sequence[str] = ()
    #: files (relative to the folder) the command must write
    writes: Sequence[str] = ()
    #: not run, and why
    skip: str = ""
    slow: bool = False
    timeout: int = 300


def key(line: str) -> str:
    """A command in one canonical spelling (comments dropped, quoting normalised)."""
    return shlex.join(shlex.split(line, comments=True))


PLUGIN_EXAMPLE = "the plugin example's commands run in a copy of its folder: tests/test_plugin_example.py"

# Every command of the README's bash blocks, in README order, as the README spells it.
COMMANDS: Dict[str, Command] = {key(k): v for k, v in [
    # ---- Quick start
    ("bash run.sh search", Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"])),
    ("bash run.sh test", Command(skip="runs the whole test suite, this module included (recursion; about an "
                                      "hour on two cores); `nasforge` commands are what is tested here")),
    ("bash run.sh trials", Command(expect=[r"COMPLETE[\s\S]*COMPLETE"])),
    ("bash run.sh best", Command(expect=[r"tokens:", r"L0:"])),
    ("bash run.sh retrain --seeds 3", Command(("--epochs", "1"), "the final recipe's 60 epochs x (3 to choose + "
                                              "3 seeds) is an hour; 1 epoch walks the same code",
                                              expect=[r"test accuracy over 3 seeds"])),
    ("bash run.sh export", Command(expect=[r"exported trial \d+ \(seed 0, test accuracy [\d.]+%; "
                                          r"retrained seeds 0, 1, 2, --seed chooses\) to "])),
    ("bash run.sh search --resume", Command(expect=[r"\b2 completed\b"])),  # the budget was used: nothing to do
    # ---- tabular benchmarks
    ("bash run.sh search --space nb201-cifar10 --strategy evolution --budget 300",
     Command(expect=[r"\b300 completed\b"])),
    ("bash run.sh benchmark --strategies random,evolution,reinforce --seeds 20",
     Command(("--seeds", "2"), "60 runs take over a minute on two cores; 6 runs walk the same code",
             expect=[r"\b6 runs in\b"])),
    ("bash run.sh pareto --metrics val_acc,ptq_acc --plot front.png", Command(writes=["front.png"])),
    # ---- parallel workers, limits and Ray
    ("bash run.sh search --workers 2", Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"], slow=True)),
    ("bash run.sh search --trial-timeout 600 --memory-limit 4000 --retries 1",
     Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"], slow=True)),
    ("ray start --head", Command(skip="starts a Ray cluster's head node (a daemon that outlives the test)")),
    ("nasforge search --executor ray --address auto --workers 32 --set execution.cpus_per_trial=2",
     Command(skip="needs the cluster that `ray start --head` starts (skipped) and 32 CPUs' worth of workers")),
    ("nasforge search --executor ray --workers 4",
     Command(TINY, TINY_WHY + "; starting a local Ray instance alone takes about a minute on two cores",
             expect=[r"\b2 completed\b"], slow=True, timeout=480)),
    # ---- your own search space (a plugin): run in a copy of examples/my_plugin by test_plugin_example.py
    *[(line, Command(skip=PLUGIN_EXAMPLE)) for line in (
        "cd examples/my_plugin", "PYTHONPATH=. nasforge search --config search.toml", "PYTHONPATH=. nasforge trials",
        "PYTHONPATH=. nasforge best", "PYTHONPATH=. nasforge search --resume --budget 30",
        "PYTHONPATH=. nasforge pareto --metrics val_acc,params", "PYTHONPATH=. nasforge report")],
    # ---- hardware-aware and multi-objective
    ('bash run.sh search --objective val_acc --constraint "latency_ms<=2" --constraint-mode hard',
     Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"], slow=True)),
    ('bash run.sh search --constraint "params<=50000" --constraint-mode soft',
     Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"], slow=True)),
    ("""bash run.sh search --strategy evolution --set 'strategy.objectives=["val_acc:max","latency_ms:min"]'""",
     Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"], slow=True)),
    ("bash run.sh pareto --metrics val_acc,latency_ms --plot front.png", Command(writes=["front.png"], slow=True)),
    # ---- estimating performance cheaply
    ("""bash run.sh search --set 'training.pruning={"eta": 3, "min_epochs": 1}'""",
     Command(("--budget", "4", "--epochs", "3", "--layers", "2"),
             "successive halving needs more than one epoch and a few children to stop any (rungs at 1, 3 "
             "epochs); 4 children of 3 epochs, not 300 of 8", expect=[r"\b\d completed\b"], slow=True)),
    ("bash run.sh search --set training.estimator=shared-weights",
     Command(("--budget", "2", "--layers", "2", "--set", "training.warmup_steps=50"),
             "300 children and 500 supernet warm-up steps take many minutes; weight sharing trains in steps, "
             "so there is no --epochs to shrink", expect=[r"\b2 completed\b"], slow=True)),
    ("bash run.sh search --set training.estimator=zero-cost --set reward.metric=proxy_naswot "
     "--reward-transform identity",
     Command(("--budget", "2"), "300 children; nothing is trained, so the default 6 layers cost little (with 2, "
             "seed 0's first children hold no ReLU and NASWOT is -inf for them)",
             expect=[r"\b2 completed\b"], slow=True)),
    ("bash run.sh search --strategy predictor-filter", Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"],
                                                                slow=True)),
    # ---- your own benchmark table
    ("bash run.sh tabulate --experiment runs/my-table --out my-table.jsonl.gz --sample 500 --layers 4 --epochs 8",
     Command(("--sample", "3", "--epochs", "1"), "500 architectures x 8 epochs is hours; 3 x 1 walk the same code",
             expect=[r"wrote 3 architectures"], writes=["my-table.jsonl.gz"], slow=True)),
    ("bash run.sh tabulate --experiment runs/my-table --out my-table.jsonl.gz --sample 500 --resume",
     Command(("--sample", "3"), "the --sample of the shrunk run above (a larger one extends the table)",
             expect=[r"wrote 3 architectures"], writes=["my-table.jsonl.gz"], slow=True)),
    ("bash run.sh search --space own-table --set space.table=my-table.jsonl.gz --strategy evolution --budget 100",
     Command(expect=[r"\bcompleted\b"], slow=True)),
    ("bash run.sh benchmark --table my-table.jsonl.gz --strategies random,evolution --workers 1",
     Command(expect=[r"\b20 runs in\b", r"own-table: the table /\S*my-table\.jsonl\.gz"], slow=True)),
    ("bash run.sh benchmark --benchmarks mnist1d-chain --strategies random,evolution --workers 1",
     Command(("--seeds", "2"), "20 runs take about a minute; 4 walk the same code", expect=[r"\b4 runs in\b"],
             slow=True)),
    # ---- quantised networks and learned optimisers
    ("bash run.sh search --set training.quantization=qat --set training.weight_bits=4 --set training.activation_bits=8",
     Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"], slow=True)),
    ("bash run.sh retrain --seeds 1", Command(("--epochs", "3"), "the final recipe's 60 epochs x (3 to choose + 1) "
                                              "is many minutes; 3 epochs walk the same code",
                                              expect=[r"test accuracy"], slow=True)),
    ("bash run.sh export --int8",
     Command(("--min-agreement", "0.5"), "a 3-epoch child's near-tied logits flip under int8 rounding (about 88% "
             "agreement), below the 95% a trained network is held to", expect=[r"int8 \(model_int8.onnx"],
             slow=True)),
    ('bash run.sh search --set space.mixed_precision=true --constraint "weight_bits<=200000" '
     "--constraint-mode mnasnet-hard", Command(TINY, TINY_WHY, expect=[r"\b2 completed\b"], slow=True)),
    ("bash run.sh pareto --metrics val_acc,weight_bits", Command(expect=[r"hypervolume"], slow=True)),
    ("bash run.sh search --space nb201-cifar10 --objective qat_acc --strategy evolution --budget 300",
     Command(expect=[r"\b300 completed\b"], slow=True)),
    ("bash run.sh search --space update-rules --set space.weight_bits=1 --budget 60",
     Command(("--budget", "2", "--epochs", "1"), "60 rules x 4 epochs of the child is minutes; 2 x 1 walk the same "
             "code", expect=[r"\b2 completed\b", r"update: w <- w - "], slow=True)),
    ("bash run.sh export --optimizer --out rule.py", Command(writes=["rule.py"], slow=True)),
    ("OMP_NUM_THREADS=1 python benchmarks/search/update_rules.py --bits 2 --search-budget 700 --strategy evolution "
     "--search-seed 0 1",
     Command(skip="a benchmark of about an hour; its tables are in docs/benchmarks-quantised.md")),
    ("OMP_NUM_THREADS=1 python benchmarks/quantised/neural_optimiser.py --bits 1 --iterations 50 "
     "--drive-rate 0.1 --start-gain 100",
     Command(skip="a benchmark of about an hour; its table is in docs/benchmarks-quantised.md")),
]}


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


#: The first line of a block that shows a file of examples/ (tested against the file by test_plugin_example.py).
EXAMPLE_FILE = re.compile(r"#\s*(examples/\S+)\s*\n")


def blocks(lang: str, examples: bool = False) -> List[str]:
    """The README's ``lang`` blocks; those showing a file of examples/ only when ``examples``."""
    return [m.group(2) for m in FENCE.finditer(readme_text())
            if m.group(1) == lang and bool(EXAMPLE_FILE.match(m.group(2))) == examples]


def readme_commands() -> List[Tuple[str, List[str]]]:
    """(canonical key, tokens) of every command line of every bash block, in README order."""
    found = []
    for block in blocks("bash"):
        for line in block.splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                found.append((shlex.join(tokens), tokens))
    return found


def as_nasforge(tokens: Sequence[str]) -> Optional[List[str]]:
    """The nasforge arguments of a README line, or None when it is not a nasforge command."""
    if list(tokens[:2]) == ["bash", "run.sh"] and len(tokens) > 2:
        return list(tokens[2:])
    if tokens[0] == "nasforge":
        return list(tokens[1:])
    return None


def test_readme_commands_are_the_known_ones():
    """A command added, changed or removed in the README fails here, naming it: decide how it is run."""
    found = [k for k, _ in readme_commands()]
    assert found, "no bash block found in README.md"
    new = [k for k in found if k not in COMMANDS]
    gone = [k for k in COMMANDS if k not in found]
    assert not new and not gone, (f"README commands without an entry in COMMANDS: {new}; "
                                  f"entries no longer in the README: {gone}")
    assert found == list(COMMANDS), "the README's commands are in another order than COMMANDS"
    for k, c in COMMANDS.items():
        assert not c.extra or c.why, f"{k}: appended flags need a reason"
        assert c.skip or c.expect or c.writes, f"{k}: says nothing about what its output must show"


def _params():
    params = []
    for i, (k, tokens) in enumerate(readme_commands()):
        c = COMMANDS.get(k)
        marks = [pytest.mark.timeout(c.timeout if c else 300)]
        if c and c.slow:
            marks.append(pytest.mark.slow)
        shown_as = " ".join(as_nasforge(tokens) or tokens)
        params.append(pytest.param(k, tokens, id=f"{i:02d} {shown_as}"[:70], marks=marks))
    return params


@pytest.fixture(scope="module")
def reader_folder(tmp_path_factory) -> Path:
    """The reader's folder: every bash-block command runs here, in README order."""
    return tmp_path_factory.mktemp("readme-reader")


@pytest.mark.parametrize("line,tokens", _params())
def test_readme_bash_command(reader_folder, line, tokens):
    c = COMMANDS.get(line)
    assert c is not None, f"README command {line!r} has no entry in COMMANDS: add how it is run"
    if c.skip:
        pytest.skip(c.skip)
    args = as_nasforge(tokens)
    assert args is not None, f"{line!r} is not a nasforge command and has no skip reason"
    started = time.time() - 1
    run = nasforge([*args, *c.extra], cwd=reader_folder, timeout=c.timeout - 10)
    ok(run)
    for pattern in c.expect:
        assert re.search(pattern, run.stdout), f"output should match {pattern!r}{shown(run)}"
    for name in c.writes:
        path = reader_folder / name
        assert path.is_file() and path.stat().st_mtime >= started, f"{name} was not written{shown(run)}"


# ---- the Python API block -----------------------------------------------------------------------
API_BUDGET = 2  # the README's budget of 40 children of 8 epochs is many minutes


@pytest.mark.slow  # the default run has test_api_script: this block as a script and from stdin, 1 epoch
@pytest.mark.timeout(420)
def test_readme_python_api_as_a_script(tmp_path):
    found = blocks("python")
    assert len(found) == 1, f"expected the README's one python block, found {len(found)}"
    source, n = re.subn(r"\bbudget=\d+", f"budget={API_BUDGET}", found[0])
    assert n == 1, "the python block should set the budget once, as budget=N"
    (tmp_path / "script.py").write_text(source)
    run = python(["script.py"], cwd=tmp_path, timeout=400)
    ok(run)
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    # print(result.best[0].objective, result.best[0].tokens)
    assert re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)? \[\d+(, \d+)*\]", last), f"unexpected last line {last!r}{shown(run)}"
    experiment = re.search(r'run_search\(config, "([^"]+)"\)', source)
    assert experiment, "the python block no longer names its experiment folder as run_search(config, \"DIR\")"
    rows = json_out(nasforge(["trials", "--json", "--experiment", experiment.group(1)], cwd=tmp_path))
    assert sorted(r["number"] for r in rows if r["state"] == "COMPLETE") == list(range(API_BUDGET)), rows


# ---- the TOML block -----------------------------------------------------------------------------
@pytest.mark.timeout(420)
def test_readme_toml_config(tmp_path):
    found = blocks("toml")
    assert len(found) == 1, f"expected the README's one toml block, found {len(found)}"
    text = found[0]
    first = text.splitlines()[0]
    m = re.fullmatch(r"#\s*(\S+)\s*->\s*(nasforge .+?)\s*", first)
    assert m, f"the toml block's first line should say `# FILE  ->  nasforge ...`, got {first!r}"
    (tmp_path / m.group(1)).write_text(text)
    dataset = re.search(r'^dataset\s*=\s*"([^"]+)"', text, re.M)
    # budget shrunk by a flag (flags override the file): 60 children of 8 epochs is many minutes
    run = nasforge([*shlex.split(m.group(2))[1:], "--budget", "2"], cwd=tmp_path, timeout=400)
    ok(run)
    assert re.search(r"\b2 completed\b", run.stdout), shown(run)
    assert dataset and f"dataset {dataset.group(1)}" in run.stdout, f"the file's dataset was not used{shown(run)}"
