"""The search loop: ask -> record -> submit ... outcome -> record -> tell, resumable from the store.

Both the CLI and the Python API call :func:`run_search`. Every step that changes the strategy is
written to the store in the same transaction as the trial it concerns, so a search stopped at any
point (crash, ``kill -9``, Ctrl+C) resumes where it was: trials that were running are recorded as
interrupted and run again as retries, with the same tokens and seed.

The loop keeps every slot of its executor busy: it asks the strategy for a new architecture
whenever a worker is free and tells it each result as it arrives, in whatever order. With one
worker this is the classic ask/evaluate/tell sequence; strategies that learn in batches (REINFORCE,
PPO) keep the probabilities of sampling time, so results that arrive after an update still give
a correct gradient. Only the driver writes the store.

The parts live in their own modules: ``build.py`` (space and estimator from settings, what every
worker builds), ``parts.py`` (every component checked before the store is touched),
``stored_config.py`` (the stored settings, resume's comparison) and ``loop.py`` (the driver).
This module holds the experiment's layout on disk and the run itself.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .build import estimator_recipe
from .config import RUN_ONLY, ConfigError, SearchConfig, differences
from .data.datasets import Dataset
from .experiment_lock import LOCK_FILE, ExperimentLock, locked_error, running_writer
from .loop import Loop, Progress, SearchResult, SearchStopped, SearchTerminated
from .parts import build_parts
from .store import STORE_FILE, EmptyStoreError, Store, StoreError, store_path
from .stored_config import (dataset_reference, file_references, read_config, same_data, same_table, stored_config,
                            with_defaults)

__all__ = ["ESTIMATOR_CHECKPOINT", "STORE_FILE", "Progress", "SearchResult", "SearchStopped", "SearchTerminated",
           "run_search", "settings_to_resume", "store_path"]  # the Python API: results and stops come from the loop

ESTIMATOR_CHECKPOINT = "estimator.pt"  # the state of an estimator that learns (shared weights)


@contextmanager
def _sigterm_as_interrupt():
    """Only the main thread can install handlers, and a handler someone else installed is theirs."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the clean-up finish
        raise SearchTerminated("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _discard_unused(store: Store, experiment: Path, new_folder: bool) -> None:
    """A run that created its store and failed before recording any trial (a worker that cannot
    start, Ctrl+C while workers load) leaves nothing behind: the store, and the experiment folder
    when the run created it, are removed while the run still holds the experiment's lock, so the
    next search starts clean instead of silently reusing an empty experiment."""
    try:
        if store.numbers_used():
            return
    except Exception:  # noqa: BLE001 - a store we cannot read is not removed
        return
    store.close()
    path = store_path(experiment)
    for leftover in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            return
    if new_folder:
        try:
            (experiment / LOCK_FILE).unlink(missing_ok=True)  # still held, on its open descriptor, until released
            experiment.rmdir()  # only if empty: anything else in it is not ours to remove
        except OSError:
            pass


def run_search(config: SearchConfig, experiment: str | Path, resume: bool = False,
               on_progress: Optional[Callable[[Progress], None]] = None,
               data: Optional[Dataset] = None) -> SearchResult:
    """Run (or resume) a search; returns the best trials. The store is ``experiment/trials.sqlite``."""
    experiment = Path(experiment)
    path = store_path(experiment)
    config = SearchConfig.from_dict(config.to_dict())  # the caller's object is left as it was
    config.dataset = dataset_reference(config.dataset)
    config.training = file_references(config.training)
    with _sigterm_as_interrupt():
        try:  # every setting is checked first: a bad one is the error to fix, whatever the folder holds
            parts = build_parts(config, data)  # and every component before the store is touched
        except ValueError as exc:  # a ConfigError, or a component refusing the data
            if resume:
                _refuse_other_data(path, config, exc)
            raise
        _check_start(experiment, path, resume)
        wanted = stored_config(config, parts.space, parts.data)
        new_folder = not experiment.exists()
        with ExperimentLock(experiment):  # one writer per experiment, from here until the store is closed
            _check_start(experiment, path, resume, locked=True)  # again: another writer may have run meanwhile
            new_store = not path.exists()
            store = Store(path)
            try:
                stored = read_config(store)
                if resume and stored is not None:
                    same = same_data(stored, wanted) + same_table(stored, wanted)
                    diff = differences(with_defaults(stored), wanted, ignore=RUN_ONLY + same)
                    if diff:
                        raise ConfigError("cannot resume with different settings: " + "; ".join(diff))
                if resume:
                    store.latest_strategy_state()  # a damaged checkpoint is refused before anything is written
                if resume and config.budget < store.numbers_used():
                    raise ConfigError(
                        f"the budget ({config.budget}) is below the {store.numbers_used()} trials this experiment "
                        f"has already used; resume with a budget of at least {store.numbers_used()}")
                store.set_config(wanted)
                # the data the driver read travels with the recipe: a worker does not read and decode
                # the files again (an image folder is decoded once, not once per worker)
                recipe = estimator_recipe({k: v for k, v in wanted.items() if k != "data_fingerprint"}, parts.data)
                loop = Loop(parts, store, experiment, experiment / ESTIMATOR_CHECKPOINT, on_progress)
                return loop.run(resume, recipe)
            except BaseException:
                if new_store:
                    _discard_unused(store, experiment, new_folder)
                raise
            finally:
                store.close()


def _refuse_other_data(path: Path, config: SearchConfig, problem: BaseException) -> None:
    """A resume given other data that the stored settings cannot take (2-D images for a 1-D
    search): say that the data differs, as for data of the same shape, rather than advise a
    setting that a resume may not change."""
    try:
        with Store(path, readonly=True) as existing:
            stored = existing.config()
    except StoreError:
        return
    if stored and stored.get("dataset") not in (None, config.dataset):
        raise ConfigError(f"cannot resume with different settings: dataset: stored {stored['dataset']!r}, now "
                          f"{config.dataset!r}, which the search's space cannot take; a resume continues on "
                          "the search's data (a new search takes other data)") from problem


def settings_to_resume(experiment: Path) -> Dict[str, Any]:
    """The settings stored by the search ``experiment`` holds, for a resume (reads only)."""
    path = store_path(experiment)
    _check_start(experiment, path, resume=True)
    with Store(path, create=False, readonly=True) as store:
        stored = read_config(store)
    if stored is None:
        raise _refusal(experiment, f"{path} holds no search settings to resume")
    return stored


def _refusal(experiment: Path, problem: str, locked: bool = False) -> StoreError | ConfigError:
    """``problem``, unless another search holds the experiment's lock: it takes the lock before its store
    and settings are written, so while it starts the folder looks empty; naming it is the answer, as
    for a second writer once it runs. ``locked``: this process holds the lock, so no other does."""
    holder = None if locked else running_writer(experiment)
    return locked_error(experiment, holder) if holder else ConfigError(problem)


def _check_start(experiment: Path, path: Path, resume: bool, locked: bool = False) -> None:
    """Refuse a new search over trials, or a resume with nothing to resume (reads only). A store
    without tables (a creation cut short) counts as none."""
    try:
        if path.exists() and not resume:
            with Store(path, readonly=True) as existing:
                if existing.numbers_used():
                    raise _refusal(experiment, f"experiment {experiment} already holds trials; resume it with "
                                               "--resume, or choose another --experiment directory", locked)
    except EmptyStoreError:
        pass
    if resume and not path.exists():
        raise _refusal(experiment, f"nothing to resume: no store at {path}", locked)
    if resume:
        try:
            Store(path, readonly=True).close()
        except EmptyStoreError:
            raise _refusal(experiment, f"nothing to resume: {path} holds no experiment (its creation was cut "
                                       "short); start the search again without --resume", locked) from None
