"""Copies of an experiment's trials where a team already looks: MLflow or TensorBoard.

nasforge's store stays the source of truth; these are one-way mirrors, written by a reader of the
store (``nasforge track``), so a search never waits for a tracking server. Each logger remembers
what it has written (MLflow: a tag per trial run; TensorBoard: the trial ids logged by this
process), so ``--follow`` adds only what is new. The libraries are imported only when asked for:
``pip install 'nasforge[mlflow]'`` or ``'nasforge[tensorboard]'``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

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

        self.uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(experiment / 'mlflow.db').resolve()}"
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
            params = [Param(k[:250], v[:6000]) for k, v in _flat("", config, {}).items()]
            self.client.log_batch(self.parent, params=params[:100],
                                  tags=[RunTag("nasforge.space", str(config["space"]["name"])),
                                        RunTag("nasforge.strategy", str(config["strategy"]["name"]))])
        self.logged = {r.data.tags.get("nasforge.trial_id") for r in runs if r.data.tags.get("nasforge.role") == "trial"}
        self.key = key

    def log(self, trials: Sequence[Dict[str, Any]], decisions: Sequence[str], best: Sequence[Optional[float]],
            metric: str) -> int:
        from mlflow.entities import Metric, Param, RunTag

        new = 0
        stamp = 0
        for row, best_value in zip(trials, best):
            if row["state"] == "RUNNING" or str(row["id"]) in self.logged:
                continue
            stamp = int(1000 * (row["end"] or 0))
            run = self.client.create_run(self.experiment_id, run_name=f"trial {row['number']}", tags={
                "mlflow.parentRunId": self.parent, "nasforge.experiment": self.key, "nasforge.role": "trial",
                "nasforge.trial_id": str(row["id"])})
            metrics = [Metric(k, v, stamp, 0) for k, v in row["metrics"].items()]
            if row["objective"] is not None:
                metrics.append(Metric("objective", row["objective"], stamp, 0))
            if row["reward"] is not None:
                metrics.append(Metric("reward", row["reward"], stamp, 0))
            params = [Param(name, str(token)) for name, token in zip(decisions, row["tokens"])]
            tags = [RunTag("state", row["state"]), RunTag("architecture", row["summary"]),
                    RunTag("feasible", str(row["feasible"]))] + ([RunTag("error", row["error"][:5000])]
                                                                 if row["error"] else [])
            self.client.log_batch(run.info.run_id, metrics=metrics, params=params[:100], tags=tags)
            self.client.set_terminated(run.info.run_id, "FAILED" if row["state"] == "FAILED" else "FINISHED")
            if best_value is not None:
                self.client.log_metric(self.parent, f"best_{metric}", best_value, step=row["number"])
            self.logged.add(str(row["id"]))
            new += 1
        return new

    def close(self, finished: bool) -> None:
        if finished:
            self.client.set_terminated(self.parent, "FINISHED")


class TensorBoardLogger:
    """Scalars per trial number (objective, best so far, reward, every metric) and the architecture
    as text, in an event file under ``<experiment>/tensorboard`` unless told otherwise."""

    def __init__(self, experiment: Path, config: Dict[str, Any], logdir: Optional[str] = None):
        require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = Path(logdir) if logdir else experiment / "tensorboard"
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

    def close(self, finished: bool) -> None:
        self.writer.close()


def make_logger(target: str, experiment: Path, config: Dict[str, Any], where: Optional[str] = None):
    if target == "mlflow":
        return MlflowLogger(experiment, config, where)
    if target == "tensorboard":
        return TensorBoardLogger(experiment, config, where)
    raise ValueError(f"--log-to {target!r}: choose one of {', '.join(TARGETS)}")


def mirror(logger, experiment: Path) -> Dict[str, Any]:
    """Log what is new in the experiment; returns the counts (and whether the search looks done)."""
    from .views import experiment_data

    data = experiment_data(experiment, heavy=False, drawings=False)
    new = logger.log(data["trials"], data["decisions"], data["best_so_far"], data["settings"]["metric"])
    c = data["counts"]
    finished = c["COMPLETE"] + c["FAILED"] + c["PRUNED"]
    return {"new": new, "trials": len(data["trials"]), "running": c["RUNNING"],
            "done": not c["RUNNING"] and finished >= (data["settings"]["budget"] or 0)}


class FollowSearch:
    """``nasforge search --log-to``: each trial logged as the search reports it finished (the
    search's ``on_progress``), from the record it hands over, so nothing is re-read per trial. The
    logger is made at the first report, when the store holds the search's complete settings. A
    tracker that fails mid-search stops logging (``error`` says why); the search goes on."""

    def __init__(self, target: str, experiment: Path, where: Optional[str] = None):
        require(target)
        self.target, self.experiment, self.where = target, Path(experiment), where
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
        if self.logger is not None:
            self.logger.close(finished)
