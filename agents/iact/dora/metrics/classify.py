"""Performance levels per metric and overall, under one report year's cluster table (benchmarks.py).

The overall level is this dashboard's own summary, not the report's: the report forms its clusters
from all four metrics at once, which a single team's four numbers cannot reproduce. Here each
known level scores Elite=4 .. Low=1 and the mean is rounded down, so one weak key pulls the team
down rather than being averaged away.
"""

from __future__ import annotations

from iact.dora.metrics.benchmarks import LEVELS, NEWEST, Benchmark, get

__all__ = ["LEVELS", "distribution", "level", "overall"]


def level(metric: str, value: float | None, benchmark: Benchmark | None = None) -> str | None:
    """The level of one metric's value; None when there is no value to judge."""
    if value is None:
        return None
    return (benchmark or get(NEWEST)).tables[metric].level(value)


def overall(levels: dict[str, str | None]) -> str | None:
    """The mean of the known levels (Elite=4 .. Low=1), rounded down."""
    scores = [4 - LEVELS.index(v) for v in levels.values() if v]
    if not scores:
        return None
    return LEVELS[4 - int(sum(scores) / len(scores))]


def distribution(levels: list[str | None]) -> dict[str, int]:
    """How many of the given levels are at each level (None: no data), in LEVELS order."""
    return {name: sum(1 for v in levels if v == name) for name in LEVELS}
