"""Copies of an experiment's trials where a team already looks: MLflow or TensorBoard.

nasforge's store stays the source of truth; these are one-way mirrors, written by a reader of the
store (``nasforge track``), so a search never waits for a tracking server. Each logger remembers
what it has written (MLflow: a tag per trial run; TensorBoard: the trial ids logged by this
process), so ``--follow`` adds only what is new. The libraries are imported only when asked for:
``pip install 'nasforge[mlflow]'`` or ``'nasforge[tensorboard]'``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence

from .tracking_destinations import check_destination, destination  # noqa: F401 - used here, and by the CLI

TARGETS = ("mlflow", "tensorboard")


def require(target: str) -> None:
    """The optional extra ``target`` needs is installed, or a ValueError that names the pip package
    (before a search starts, not at its first trial)."""
    try:
        if target == "mlflow":
            import mlflow.tracking  # noqa: F401
        elif target == "tensorboard":
            import torch.utils.tensorboard  # noqa: F401 - needs the tensorboard package
        else:
            raise ValueError(f"--log-to {target!r}: choose one of {', '.join(TARGETS)}")
    except ImportError:
        what = {"mlflow": "MLflow", "tensorboard": "TensorBoard"}[target]
        raise ValueError(f"--log-to {target} needs {what}: pip install 'nasforge[{target}]'") from None


#: What MLflow accepts in a parameter, metric or tag name (mlflow.utils.validation's
#: validate_param_and_metric_name: ``^[/\w.\- :]*$``, without the colon that it refuses on Windows);
#: nor may a name change under posixpath.normpath (no "a//b", "./a", "a/..", leading "/").
_MLFLOW_BAD = re.compile(r"[^/\w.\- ]")
_READABLE = (("<-", "_from_"), ("->", "_to_"))  # NAS-Bench-201 edges: edge_1<-0 is edge_1_from_0
MLFLOW_KEY_LENGTH = 250


def mlflow_key(name: str) -> str:
    """``name`` as a valid MLflow key, itself when it already is one."""
    key = str(name)
    for old, new in _READABLE:
        key = key.replace(old, new)
    key = _MLFLOW_BAD.sub("_", key)
    key = "/".join("__" if part == ".." else part for part in key.split("/") if part not in ("", "."))
    return (key or "_")[:MLFLOW_KEY_LENGTH]


def mlflow_keys(names: Iterable[str], taken: Iterable[str] = ()) -> Dict[str, str]:
    """Each name's valid MLflow key, unique among them (and apart from ``taken``): names that are
    valid keys already keep them; a changed name that would clash gets a suffix ``_2``, ``_3``..."""
    names = list(dict.fromkeys(str(n) for n in names))
    keys = {n: n for n in names if mlflow_key(n) == n}
    used = set(keys.values()) | set(taken)
    for name in names:
        if name in keys:
            continue
        key = base = mlflow_key(name)
        i = 2
        while key in used:
            suffix = f"_{i}"
            key, i = base[:MLFLOW_KEY_LENGTH - len(suffix)] + suffix, i + 1
        used.add(key)
        keys[name] = key
    return {n: keys[n] for n in names}


def _renamed(*mappings: Dict[str, str]) -> list:
    """The tag that keeps the original names of keys MLflow would not take as they were (none when
    every name was kept): ``nasforge.renamed``, a JSON object key -> original name."""
    from mlflow.entities import RunTag

    changed = {k: n for m in mappings for n, k in m.items() if k != n}
    return [RunTag("nasforge.renamed", json.dumps(changed)[:5000])] if changed else []


def _flat(prefix: str, value: Any, out: Dict[str, str]) -> Dict[str, str]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if not isinstance(value, str) else value
    return out


class MlflowLogger:
    """One MLflow run for the search (its settings as parameters, the best objective so far as a
    metric over trials) and one nested run per finished trial (its decisions as parameters, its
    metrics, state and architecture as tags)."""

    def __init__(self, experiment: Path, config: Dict[str, Any], uri: Optional[str] = None):
        require("mlflow")
        from mlflow.tracking import MlflowClient

        self.uri = destination("mlflow", experiment, uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        name = f"nasforge/{experiment.resolve().name}"
        found = self.client.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        key = str(experiment.resolve())
        runs = self.client.search_runs([self.experiment_id], f"tags.`nasforge.experiment` = '{key}'")
        parents = [r for r in runs if r.data.tags.get("nasforge.role") == "search"]
        if parents:
            self.parent = parents[0].info.run_id
        else:
            from mlflow.entities import Param, RunTag

            run = self.client.create_run(self.experiment_id, run_name=f"search {experiment.name}",
                                         tags={"nasforge.experiment": key, "nasforge.role": "search"})
            self.parent = run.info.run_id
            flat = _flat("", config, {})
            keys = mlflow_keys(flat)
            params = [Param(keys[k], v[:6000]) for k, v in flat.items()]
            with self._ended_if_failing(self.parent):
                self.client.log_batch(self.parent, params=params[:100],
                                      tags=[RunTag("nasforge.space", str(config["space"]["name"])),
                                            RunTag("nasforge.strategy", str(config["strategy"]["name"]))]
                                      + _renamed(keys))
        self.logged = set()
        for r in runs:
            if r.data.tags.get("nasforge.role") != "trial":
                continue
            if r.info.status == "RUNNING" or "nasforge.log_error" in r.data.tags:
                # a trial half logged by an earlier attempt that failed: ended, put aside, logged anew
                if r.info.status == "RUNNING":
                    self.client.set_terminated(r.info.run_id, "FAILED")
                self.client.delete_run(r.info.run_id)
            else:
                self.logged.add(r.data.tags.get("nasforge.trial_id"))
        self.key = key
        self._decision_keys: Dict[tuple, Dict[str, str]] = {}

    def _ended_if_failing(self, run_id: str):
        """Around what is logged to a run: a failure ends the run as FAILED, with the error as a tag,
        never leaving it RUNNING; the error is raised on."""
        from contextlib import contextmanager

        @contextmanager
        def guard():
            try:
                yield
            except Exception as exc:
                try:
                    self.client.set_tag(run_id, "nasforge.log_error", f"{type(exc).__name__}: {exc}"[:5000])
                except Exception:  # noqa: BLE001 - the store itself may be what failed
                    pass
                try:
                    self.client.set_terminated(run_id, "FAILED")
                except Exception:  # noqa: BLE001
                    pass
                raise

        return guard()

    def log(self, trials: Sequence[Dict[str, Any]], decisions: Sequence[str], best: Sequence[Optional[float]],
            metric: str) -> int:
        from mlflow.entities import Metric, Param, RunTag

        names = tuple(decisions)
        if names not in self._decision_keys:
            self._decision_keys[names] = mlflow_keys(names)
        decision_keys = self._decision_keys[names]
        best_key = mlflow_key(f"best_{metric}")
        new = 0
        stamp = 0
        for row, best_value in zip(trials, best):
            if row["state"] == "RUNNING" or str(row["id"]) in self.logged:
                continue
            stamp = int(1000 * (row["end"] or 0))
            run = self.client.create_run(self.experiment_id, run_name=f"trial {row['number']}", tags={
                "mlflow.parentRunId": self.parent, "nasforge.experiment": self.key, "nasforge.role": "trial",
                "nasforge.trial_id": str(row["id"])})
            with self._ended_if_failing(run.info.run_id):
                metric_keys = mlflow_keys(row["metrics"], taken=("objective", "reward"))
                metrics = [Metric(metric_keys[k], v, stamp, 0) for k, v in row["metrics"].items()]
                if row["objective"] is not None:
                    metrics.append(Metric("objective", row["objective"], stamp, 0))
                if row["reward"] is not None:
                    metrics.append(Metric("reward", row["reward"], stamp, 0))
                params = [Param(decision_keys[name], str(token)) for name, token in zip(names, row["tokens"])]
                tags = [RunTag("state", row["state"]), RunTag("architecture", row["summary"]),
                        RunTag("feasible", str(row["feasible"]))] + ([RunTag("error", row["error"][:5000])]
                                                                     if row["error"] else [])
                tags += _renamed({n: decision_keys[n] for n in names[:len(params)]}, metric_keys)
                self.client.log_batch(run.info.run_id, metrics=metrics, params=params[:100], tags=tags)
                self.client.set_terminated(run.info.run_id, "FAILED" if row["state"] == "FAILED" else "FINISHED")
            if best_value is not None:
                self.client.log_metric(self.parent, best_key, best_value, step=row["number"])
            self.logged.add(str(row["id"]))
            new += 1
        return new

    def close(self, end: Optional[str]) -> None:
        """The search's run ended as ``end`` (FINISHED, FAILED: logging failed, KILLED: the search
        stopped before its budget), or left RUNNING (None: the search goes on)."""
        if end is not None:
            self.client.set_terminated(self.parent, end)


class TensorBoardLogger:
    """Scalars per trial number (objective, best so far, reward, every metric) and the architecture
    as text, in an event file under ``<experiment>/tensorboard`` unless told otherwise."""

    def __init__(self, experiment: Path, config: Dict[str, Any], logdir: Optional[str] = None):
        require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = Path(destination("tensorboard", experiment, logdir))
        self.writer = SummaryWriter(log_dir=str(self.logdir))
        self.writer.add_text("settings", "```\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```", 0)
        self.logged: set = set()

    def log(self, trials: Sequence[Dict[str, Any]], decisions: Sequence[str], best: Sequence[Optional[float]],
            metric: str) -> int:
        new = 0
        for row, best_value in zip(trials, best):
            if row["state"] == "RUNNING" or row["id"] in self.logged:
                continue
            step = row["number"]
            if row["objective"] is not None:
                self.writer.add_scalar(f"search/{metric}", row["objective"], step)
            if best_value is not None:
                self.writer.add_scalar(f"search/best_{metric}", best_value, step)
            if row["reward"] is not None:
                self.writer.add_scalar("search/reward", row["reward"], step)
            for name, value in row["metrics"].items():
                self.writer.add_scalar(f"metrics/{name}", value, step)
            self.writer.add_text("architecture", f"{row['state']}: {row['summary']}", step)
            self.logged.add(row["id"])
            new += 1
        self.writer.flush()
        return new

    def close(self, end: Optional[str]) -> None:
        self.writer.close()


def make_logger(target: str, experiment: Path, config: Dict[str, Any], where: Optional[str] = None):
    if target == "mlflow":
        return MlflowLogger(experiment, config, where)
    if target == "tensorboard":
        return TensorBoardLogger(experiment, config, where)
    raise ValueError(f"--log-to {target!r}: choose one of {', '.join(TARGETS)}")


def mirror(logger, experiment: Path) -> Dict[str, Any]:
    """Log what is new in the experiment; returns the counts, whether the search looks done and
    whether a search is writing the experiment now (``writer``: its description, or None)."""
    from ..experiment_lock import running_writer
    from .views import experiment_data

    writer = running_writer(experiment)  # before reading: a search that ends meanwhile has written all
    data = experiment_data(experiment, heavy=False, drawings=False)
    new = logger.log(data["trials"], data["decisions"], data["best_so_far"], data["settings"]["metric"])
    c = data["counts"]
    finished = c["COMPLETE"] + c["FAILED"] + c["PRUNED"]
    return {"new": new, "trials": len(data["trials"]), "running": c["RUNNING"], "writer": writer,
            "done": not c["RUNNING"] and finished >= (data["settings"]["budget"] or 0)}


class FollowSearch:
    """``nasforge search --log-to``: each trial logged as the search reports it finished (the
    search's ``on_progress``), from the record it hands over, so nothing is re-read per trial. The
    destination is checked when this is made, before the search starts; the logger is made at the
    first report, when the store holds the search's complete settings. A tracker that fails
    mid-search stops logging (``error`` says why); the search goes on."""

    def __init__(self, target: str, experiment: Path, where: Optional[str] = None, flag: str = "--log-uri"):
        require(target)
        self.where = check_destination(target, Path(experiment), where, flag)
        self.target, self.experiment = target, Path(experiment)
        self.logger = None
        self.error: Optional[str] = None
        self.logged = 0
        self.start: Optional[float] = None

    def __call__(self, progress) -> None:
        trial = progress.last
        if self.error is not None or trial is None or trial.state in ("RUNNING", "WAITING"):
            return
        try:
            self._log(trial, progress)
        except Exception as exc:  # noqa: BLE001 - the search must not stop for its tracker
            self.error = f"{type(exc).__name__}: {exc}"

    def _log(self, trial, progress) -> None:
        import time

        from .views import trial_rows

        if self.logger is None:
            self._open()
        if self.start is None:
            self.start = trial.started if trial.started is not None else time.time()
        rows = trial_rows([trial], self.space, self.start, time.time())[0]
        best = progress.best.objective if progress.best is not None else None
        self.logged += self.logger.log(rows, self.decisions, [best], progress.metric)

    def _open(self) -> None:
        from .views import open_readonly
        from ..spaces.base import space_of_section
        from ..stored_config import read_config

        with open_readonly(self.experiment) as store:
            config = read_config(store)
        self.space = space_of_section(config["space"])
        self.decisions = [d.name for d in self.space.decisions]
        self.logger = make_logger(self.target, self.experiment, config, self.where)

    def close(self, finished: bool) -> None:
        """The search's MLflow run ends FINISHED when the search did, FAILED when logging failed,
        KILLED when the search stopped early."""
        if self.logger is not None:
            self.logger.close("FINISHED" if finished and self.error is None else
                              "FAILED" if self.error is not None else "KILLED")
