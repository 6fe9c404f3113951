"""The report's two costly views, each computed in a forked process of its own while this one reads
the store and writes the page.

Decision importance needs scikit-learn and the policy view needs torch: each import costs about
1.5 s of CPU, and the policy view about as much again for a 1,000-trial search. Done one after the
other they were most of ``nasforge report``'s time; side by side, on two cores, the page is ready
when the slower of them is. Reading the store, the rows, the drawings and the page itself import
neither library, so this process never pays for them.

Each worker is forked before this process imports torch (no threads are copied) and starts its
import at once. Only on Linux, where fork is the platform's way; elsewhere, or when a worker has
died, the work is done in this process instead, with the same result.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .importance import importance_of, in_process, usable_rows


def _warm_importance() -> None:
    import sklearn.ensemble  # noqa: F401 - paid while this process reads the store


def _warm_learning() -> None:
    import torch  # noqa: F401 - paid while this process reads the store

    from ..strategies import controller  # noqa: F401


def _learning_from(experiment: str, config: Dict[str, Any], rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The learning view in a worker: its own read-only connection (a connection is not carried
    across fork) and the space rebuilt from the stored settings."""
    from ..spaces.base import space_of_section
    from .learning import learning_view
    from .views import open_readonly

    store = open_readonly(Path(experiment))
    try:
        return learning_view(store, config, space_of_section(config["space"]), rows, None)
    finally:
        store.close()


class InBackground:
    """``importance(space, rows)`` and ``learning(experiment, store, config, space, rows)`` each
    return what gives the answer when called, so the caller works meanwhile. ``close`` when done."""

    def __init__(self):
        self.pools: Dict[str, Any] = {}
        if sys.platform.startswith("linux") and "torch" not in sys.modules:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            fork = multiprocessing.get_context("fork")
            for kind, warm in (("importance", _warm_importance), ("learning", _warm_learning)):
                self.pools[kind] = ProcessPoolExecutor(1, mp_context=fork)
                self.pools[kind].submit(warm)

    def _submit(self, kind: str, fn, *args) -> Optional[Callable[[], Any]]:
        pool = self.pools.get(kind)
        if pool is None:
            return None
        try:
            return pool.submit(fn, *args).result
        except RuntimeError:  # the worker is gone (BrokenProcessPool): the caller does it here
            self.pools.pop(kind, None)
            return None

    def importance(self, space, rows) -> Callable[[], Dict[str, Any]]:
        later = self._submit("importance", importance_of, [d.name for d in space.decisions], usable_rows(rows))
        return later or in_process(space, rows)

    def learning(self, experiment: Path, store, config, space, rows) -> Callable[[], Optional[Dict[str, Any]]]:
        from .learning import learning_view

        later = self._submit("learning", _learning_from, str(experiment), config, rows)
        return later or (lambda: learning_view(store, config, space, rows, None))

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(cancel_futures=True)
        self.pools = {}
