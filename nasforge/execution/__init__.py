"""Executors run evaluations: ``inline`` (in the driver), ``local`` (a process pool, the default
for training) and ``ray`` (a Ray cluster or a local Ray instance; Ray itself is imported only
when a search uses it)."""

from . import inline, local, ray_executor  # noqa: F401  (registration)
from .base import EXECUTORS, EstimatorRecipe, Executor, Outcome, Task, create_executor

__all__ = ["EXECUTORS", "EstimatorRecipe", "Executor", "Outcome", "Task", "create_executor"]
