"""A plugin (``plugins = ["my_package.my_space"]``) through the real ``nasforge`` command, as the
README promises it: its space and strategy can be named in the config, every command that reads the
experiment afterwards imports it from the stored settings, and a plugin that cannot be imported is
refused in one line naming it and why (exit 2), with how to make it importable when Python cannot
find it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli_paths import completed_trials, nasforge, ok, refused, shown, user_env

#: A small space and strategy of the user's own, in a package of the user's folder.
MY_SPACE = '''
from torch import nn
from nasforge.spaces.base import SPACES, Decision, SearchSpace
from nasforge.strategies.base import STRATEGIES, Proposal, Strategy


@SPACES.register("walk-mlp")
class WalkMLP(SearchSpace):
    name = "walk-mlp"

    def __init__(self, widths=(8, 16)):
        self.widths = list(widths)

    def config(self):
        return {"widths": self.widths}

    @property
    def decisions(self):
        return [Decision("width", tuple(self.widths)), Decision("act", ("relu", "tanh"))]

    def summary(self, tokens):
        v = self.encode(tokens)
        return f"mlp{v['width']}-{v['act']}"

    def build(self, tokens, input_shape, num_classes):
        v = self.encode(tokens)
        n_in = 1
        for size in input_shape:
            n_in *= int(size)
        act = nn.ReLU() if v["act"] == "relu" else nn.Tanh()
        return nn.Sequential(nn.Flatten(), nn.Linear(n_in, v["width"]), act, nn.Linear(v["width"], num_classes))


@STRATEGIES.register("walk-random")
class WalkRandom(Strategy):
    name = "walk-random"

    def ask(self):
        return Proposal(self.space.sample(self.rng), {})

    def tell(self, tokens, reward, info):
        pass
'''


def _user_folder(tmp_path: Path, data: str, plugin: str = "my_package.my_space") -> Path:
    """The user's folder: the package, and a config naming the plugin's space and strategy."""
    (tmp_path / "my_package").mkdir()
    (tmp_path / "my_package" / "__init__.py").write_text("")
    (tmp_path / "my_package" / "my_space.py").write_text(MY_SPACE)
    (tmp_path / "my_package" / "broken.py").write_text('raise RuntimeError("MY_ENV is not set")\n')
    (tmp_path / "my.toml").write_text(textwrap.dedent(f"""\
        plugins = ["{plugin}"]
        dataset = "{data}"
        budget = 2
        [space]
        name = "walk-mlp"
        [strategy]
        name = "walk-random"
        [training]
        epochs = 1
        """))
    return tmp_path


def test_a_plugin_space_is_searched_and_every_command_reads_it(tmp_path, mnist1d_npz):
    folder = _user_folder(tmp_path, mnist1d_npz)
    exp = folder / "runs" / "mine"
    run = nasforge(["search", "--config", "my.toml", "--experiment", exp, "--quiet"], cwd=folder)
    ok(run)
    assert "2 completed" in run.stdout and "mlp" in run.stdout, shown(run)
    assert completed_trials(exp) == 2
    ok(nasforge(["search", "--resume", "--experiment", exp, "--budget", "3", "--quiet"], cwd=folder))
    assert completed_trials(exp) == 3
    for args, said in ((["trials"], "COMPLETE"), (["best"], "width = "),
                       (["pareto", "--metrics", "val_acc,params"], "mlp")):  # the space's summary, not raw tokens
        run = nasforge([*args, "--experiment", exp], cwd=folder)
        ok(run)
        assert said in run.stdout, shown(run)
    ok(nasforge(["report", "--experiment", exp, "--out", folder / "r.html"], cwd=folder))
    assert (folder / "r.html").is_file()
    ok(nasforge(["track", "--log-to", "tensorboard", "--experiment", exp, "--to", folder / "tb"], cwd=folder))


def test_a_plugin_with_a_typo_is_named_not_the_space_it_would_register(tmp_path, mnist1d_npz):
    folder = _user_folder(tmp_path, mnist1d_npz, plugin="my_package.my_spce")
    line = refused(nasforge(["search", "--config", "my.toml", "--experiment", folder / "e"], cwd=folder), "search",
                   "plugin 'my_package.my_spce' cannot be imported", "No module named 'my_package.my_spce'")
    assert "unknown search space" not in line
    assert not (folder / "e").exists()


def test_a_plugin_that_raises_on_import_is_refused_in_one_line(tmp_path, mnist1d_npz):
    folder = _user_folder(tmp_path, mnist1d_npz, plugin="my_package.broken")
    refused(nasforge(["search", "--config", "my.toml", "--experiment", folder / "e"], cwd=folder), "search",
            "plugin 'my_package.broken' cannot be imported: RuntimeError: MY_ENV is not set")


def test_a_plugin_python_cannot_find_is_refused_with_how_to_make_it_importable(tmp_path, mnist1d_npz):
    """The ``nasforge`` console script does not look in the current folder (``python -m`` does): run
    as it runs, a script outside the folder, the package is not found, and the refusal says how."""
    folder = _user_folder(tmp_path, mnist1d_npz)
    script = tmp_path / "bin" / "nasforge"
    script.parent.mkdir()
    script.write_text("import sys\nfrom nasforge.cli import main\nsys.exit(main())\n")
    run = subprocess.run([sys.executable, script, "search", "--config", "my.toml", "--experiment", folder / "e"],
                         cwd=folder, capture_output=True, text=True, timeout=120, env=user_env())
    refused(run, "search", "plugin 'my_package.my_space' cannot be imported: No module named 'my_package'",
            "put the folder that holds 'my_package' on PYTHONPATH", "PYTHONPATH=. nasforge")
    # and what it says works
    ok(nasforge(["search", "--config", "my.toml", "--experiment", folder / "e", "--budget", "1", "--quiet"],
                cwd=folder, env={"PYTHONPATH": f"{user_env()['PYTHONPATH']}:."}))


def test_a_stored_plugin_that_is_gone_is_named_by_the_commands_that_read_it(tmp_path, mnist1d_npz):
    folder = _user_folder(tmp_path, mnist1d_npz)
    exp = folder / "e"
    ok(nasforge(["search", "--config", "my.toml", "--experiment", exp, "--budget", "1", "--quiet"], cwd=folder))
    (folder / "my_package" / "my_space.py").rename(folder / "my_package" / "gone.py")
    for command in ("trials", "best", "pareto"):
        refused(nasforge([command, "--experiment", exp], cwd=folder), command,
                "plugin 'my_package.my_space' cannot be imported")
    assert completed_trials(exp) == 1  # nothing stored is lost
