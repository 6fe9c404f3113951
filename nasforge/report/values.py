"""Reading stored values for the views: a finite number or nothing, and a metric's direction.
Shared by the views' modules (``views``, ``pareto_view``, ``learning``) so none imports another."""

from __future__ import annotations

import math
from typing import Any, Optional


def as_number(value: Any) -> Optional[float]:
    """A finite float, or None for anything else (text, booleans, NaN, infinities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def direction_of(metric: str) -> Optional[str]:
    """The registered metric's direction; None for a metric nasforge does not know."""
    from ..objectives.registry import METRICS

    info = METRICS.get(metric)
    return info.direction if info is not None else None
