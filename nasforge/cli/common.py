"""What every ``nasforge`` command shares: where experiments live, opening a store to read it,
and the formatting of numbers and trial tables. Imports no command module.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from rich.console import Console
from rich.table import Table

from ..config import ConfigError, SearchConfig
from ..registry import UnknownNameError

RUNS = Path("runs")
LATEST = RUNS / "latest"
#: What a shell reports for a command ended by each signal (128 + its number): a command that stops
#: on one exits as if it had been killed by it, so scripts and schedulers read it the same way.
EXIT_SIGINT, EXIT_SIGPIPE, EXIT_SIGTERM = 130, 141, 143
T = TypeVar("T")


def user_errors() -> tuple:
    """The exceptions that mean bad input (exit 2, one line), imported only once a command has
    failed: the modules defining them import torch, which ``--help`` should not pay for."""
    from ..data.datasets import DataError
    from ..store import StoreError

    return (ConfigError, DataError, UnknownNameError, StoreError, ValueError, KeyError)


def run_until_stopped(console: Console, command: str, run: Callable[[], T], how_to_continue: str,
                      experiment: Path) -> Tuple[Optional[T], int]:
    """``(run(), 0)``, or, when the search ``run`` starts in ``experiment`` stops early, ``(None, exit
    code)`` after one line saying so: Ctrl+C 130 and SIGTERM 143 (the store is consistent,
    ``how_to_continue`` says how to resume, unless no store is left: see :func:`nothing_recorded`),
    1 when the search gave up (too many failed trials in a row)."""
    from ..search import SearchStopped, SearchTerminated

    try:
        return run(), 0
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, SearchTerminated)
        what_next = f"nothing was recorded (no trial had started), so there is nothing to resume; start the " \
            f"{command} again" if nothing_recorded(experiment) else how_to_continue
        console.print(f"\n[yellow]stopped{' (SIGTERM)' if terminated else ''}.[/] {what_next}")
        return None, EXIT_SIGTERM if terminated else EXIT_SIGINT
    except SearchStopped as exc:
        console.print(f"[red]{command} stopped:[/] {exc}")
        return None, 1


# ---- experiment directories ---------------------------------------------------------------------


def _new_experiment_dir(config: SearchConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = Path(config.dataset).stem if config.space["name"] == "chain-cnn" else config.space["name"]
    base = RUNS / f"{stamp}-{name}-{config.strategy['name']}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def check_experiment_dir(path: Path) -> None:
    """An experiment folder that can be made and written, said before anything runs. Asked by a real
    probe (``writable.py``): ``os.access`` says yes to root where nothing can be made (/proc)."""
    from ..writable import why_unwritable

    if path.exists() and not path.is_dir():
        raise ConfigError(f"--experiment {path} is a file, not a folder; choose another path")
    why = why_unwritable(path)
    if why:
        raise ConfigError(f"cannot {'write' if path.is_dir() else 'make'} the experiment folder {path}: {why}")


def check_output_file(out: Path, flag: str, example: str) -> None:
    """A file a command will write, checked before it does any work: not a folder, and in a folder
    that exists or can be made and takes files (``example`` names a file to suggest instead)."""
    if out.is_dir():
        raise ConfigError(f"{flag} {out} is a folder; give a file name such as {out / example}")
    check_writable_folder(out.parent, out)


def check_writable_folder(folder: Path, out: Path) -> None:
    """``folder`` (where ``out`` goes) exists and takes files, or can be made: said before any work."""
    from ..writable import why_unwritable

    why = why_unwritable(folder)
    if why:
        raise ConfigError(f"cannot write {out}: {why}")


def nothing_recorded(experiment: Path) -> bool:
    """Whether a search that stopped left no store in ``experiment``: one stopped before it recorded
    any trial removes its store, and the folder it made (``search._discard_unused``)."""
    from ..search import store_path

    return not store_path(experiment).exists()


def latest_text() -> Optional[str]:
    """What ``runs/latest`` holds (None: it does not exist), to put back with :func:`_restore_latest`."""
    return LATEST.read_text() if LATEST.is_file() else None


def _remember_latest(path: Path) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    LATEST.write_text(str(path) + "\n")


def _restore_latest(before: Optional[str]) -> None:
    """Put ``runs/latest`` back as :func:`latest_text` found it, for a search that left nothing."""
    if before is None:
        LATEST.unlink(missing_ok=True)
    else:
        LATEST.write_text(before)


def _resolve_experiment(arg: Optional[str]) -> Path:
    if arg:
        return Path(arg)
    if LATEST.exists():
        return Path(LATEST.read_text().strip())
    raise ConfigError("no experiment given and no earlier search found here; pass --experiment DIR")


def _open_store(arg: Optional[str], readonly: bool = False):
    """``readonly``: for commands that only read (trials, best, pareto, export), which then work on a
    store this user may not write, and never wait for or disturb a running search."""
    from ..search import store_path
    from ..store import Store

    experiment = _resolve_experiment(arg)
    path = store_path(experiment)
    if not path.exists():
        raise ConfigError(f"no experiment store at {path}")
    return experiment, Store(path, create=False, readonly=readonly)


# ---- formatting ---------------------------------------------------------------------------------


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def format_metric(name: str, value: Optional[float]) -> str:
    """Accuracies (fractions) as percentages, anything else (a proxy score, a latency) as it is."""
    if value is None:
        return "-"
    if name.endswith("acc") or "_acc_" in name:
        return f"{100 * value:.2f}%"
    return f"{value:.4g}"


def _human(n: Optional[float]) -> str:
    if n is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class _PipeConsole(Console):
    """rich's own answer to a reader that left (``best | head``) is ``SystemExit(1)``, which says the
    command failed; raising the pipe error instead lets ``main`` end as every other command does
    then, with the shell's code for SIGPIPE and nothing more on the screen."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def make_console() -> Console:
    """Wide output when not on a terminal (logs, CI), so tables do not wrap."""
    console = _PipeConsole()
    return console if console.is_terminal else _PipeConsole(width=200)


def _scorer(reward: Dict[str, Any]):
    from ..objectives.rewards import Scorer

    constraints = reward.get("constraints") or []
    constraints = [constraints] if isinstance(constraints, str) else list(constraints)
    return Scorer.from_config({**reward, "constraints": constraints})


def reward_labels(reward: Dict[str, Any]) -> Tuple[str, List[str]]:
    """The label of the value a search optimises (the scorer's, as the live line shows it) and the
    metrics shown raw beside it, from its ``[reward]``: those its constraints limit, led by the
    optimised metric itself when MnasNet factors weight it or a constraint limits it too."""
    return _labels(_scorer(reward))


def _labels(scorer) -> Tuple[str, List[str]]:
    metric = scorer.label
    limited = [scorer.objective.label] if metric != scorer.objective.label else []
    for c in scorer.constraints:
        if c.metric not in limited:
            limited.append(c.metric)
    return metric, limited


def _within_limits(scorer, metrics: Dict[str, Any]) -> Optional[bool]:
    """Whether the scorer finds no limit broken in these metrics (None when one is not measured)."""
    try:
        return not scorer.evaluate(metrics).violations
    except (KeyError, ValueError, TypeError):
        return None


def _trial_table(title: str, trials, space, show_error: bool = False,
                 reward: Optional[Dict[str, Any]] = None) -> Table:
    """Trials with the value optimised (labelled as the search's ``reward`` names it), the metrics
    under a constraint and whether the trial met them, when the search has constraints: under
    ``hard`` the stored feasibility, under the MnasNet modes (where every trial is feasible and
    a limit only weighs the objective) whether each limit held, as "within limits"."""
    scorer = _scorer(reward or {})
    metric, limited = _labels(scorer)
    table = Table(title=title)
    shown = {"params", "flops"}  # have columns of their own
    extra = [name for name in limited if name != metric and name not in shown]
    check = ("feasible" if scorer.mode == "hard" else "within limits") if limited else None
    columns = ["trial", "state", metric, *extra, *([check] if check else []), "reward", "params", "FLOPs",
               "time s", "architecture"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("state", "architecture", check) else "right")
    if show_error:
        table.add_column("error")
    for t in trials:
        number = f"{t.number}" + (f".{t.attempt}" if t.attempt else "")
        held = t.feasible if scorer.mode == "hard" else _within_limits(scorer, t.metrics)
        row = [number, t.state, format_metric(metric, t.objective),
               *[format_metric(name, t.metrics.get(name)) for name in extra],
               *([("yes" if held else "[red]no[/]") if t.state == "COMPLETE" and held is not None else "-"]
                 if check else []),
               "-" if t.reward is None else f"{t.reward:.4f}",
               _human(t.metrics.get("params")), _human(t.metrics.get("flops")),
               "-" if t.duration is None else f"{t.duration:.1f}", space.summary(t.tokens)]
        if show_error:
            row.append(t.error or "")
        table.add_row(*row)
    return table


def _space_of(store):
    from ..stored_config import read_config
    from ..spaces.base import space_of_section

    config = read_config(store)
    if config is None:
        raise ConfigError(f"{store.path} holds no search settings")
    return config, space_of_section(config["space"])

