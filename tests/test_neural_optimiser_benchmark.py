"""``benchmarks/quantised/neural_optimiser.py``: a baseline given several rates is measured at the
one best on the training tasks' seeds, never chosen on the test seeds."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quantised" / "neural_optimiser.py"


def script(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    sys.modules.pop(SCRIPT.stem, None)
    return importlib.import_module(SCRIPT.stem)


def test_a_baseline_rate_is_chosen_on_the_tuning_seeds_only(monkeypatch):
    bench = script(monkeypatch)
    seen = []

    def stand_in(task, groups, lr, seed):  # validation accuracy peaks at lr 0.1 whatever the seed
        seen.append(seed)
        return {"seed": seed, "val_acc": 1.0 - abs(lr - 0.1), "test_acc": 0.0}

    monkeypatch.setattr(bench, "run_rule", stand_in)
    lr, tried = bench.tuned_rate(None, "adam", [0.01, 0.1, 1.0], [1000, 1001])
    assert lr == 0.1 and set(tried) == {"0.01", "0.1", "1"} and set(seen) == {1000, 1001}
    seen.clear()
    assert bench.tuned_rate(None, "adam", [0.3], [1000]) == (0.3, {}) and not seen  # one rate: taken as given
