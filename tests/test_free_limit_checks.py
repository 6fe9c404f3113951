"""benchmarks/hardware/free_limit_checks.py: its ``count`` protocol is the harness's own search
(the same gap seed by seed as ``run_benchmark``), and the protocols that drop proposals over the
limit never spend a query on one while they have free drops left."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hardware" / "free_limit_checks.py"


@pytest.fixture(scope="module")
def script():
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    return importlib.import_module(SCRIPT.stem)


@pytest.mark.parametrize("strategy", ["random", "evolution", "reinforce-elite"])
def test_count_protocol_is_the_harness_search(script, strategy):
    import hardware_targets

    space, limit, best_feasible, reward = hardware_targets.constrained_task()
    runs = hardware_targets._run(strategy, {}, "nbgraph-cora", [3, 4], 60, reward)
    harness, _, _ = hardware_targets.constrained_outcomes(runs, space, limit, best_feasible)
    ours = [script.search(strategy, {}, seed, "count", budget=60) for seed in (3, 4)]
    assert [r["gap"] for r in ours] == pytest.approx(harness, abs=1e-9)
    assert [r["over_limit_queries"] for r in ours] == [r["infeasible"] for r in runs]


@pytest.mark.parametrize("protocol", ["untold", "told"])
def test_dropping_protocols_spend_no_query_over_the_limit(script, protocol):
    run = script.search("random", {}, 5, protocol, budget=60)
    assert run["over_limit_queries"] == 0
    assert run["dropped"] > 0  # a quarter of the table meets the limit: random proposes many over it


def test_a_strategy_that_only_proposes_over_the_limit_still_ends(script, monkeypatch):
    import hardware_targets

    space, limit, _, _ = hardware_targets.constrained_task()
    table = space.all_metrics()
    worst = [int(t) for t in table["tokens"][int(table["latency_ms"].argmax())]]
    from nasforge.strategies.base import Proposal
    from nasforge.strategies.random_search import RandomSearch
    monkeypatch.setattr(RandomSearch, "ask", lambda self: Proposal(tokens=list(worst), info={}))
    run = script.search("random", {}, 0, "untold", budget=5, max_free=3)
    assert (run["dropped"], run["over_limit_queries"]) == (3 * 5, 5)  # 3 free drops before each query
    assert run["gap"] == float("inf")  # nothing within the limit was found
