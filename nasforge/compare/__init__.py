"""Comparing search strategies on tabular benchmarks in seconds (``nasforge benchmark``).

``runner`` runs strategies x benchmarks x seeds and records anytime curves; ``report`` writes
them (CSV, JSON, table, PNG); ``analytic`` gives the exact expected regret of random search, the
check that the harness measures what it should.
"""

from .analytic import expected_regret, random_search_regret
from .runner import BenchmarkPlan, BenchmarkResult, resolve_benchmarks, resolve_strategies, run_benchmark

__all__ = ["BenchmarkPlan", "BenchmarkResult", "expected_regret", "random_search_regret",
           "resolve_benchmarks", "resolve_strategies", "run_benchmark"]
