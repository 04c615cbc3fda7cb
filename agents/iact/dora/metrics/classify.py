"""Performance levels per metric and overall, from one table of thresholds with its source.

Source: Google Cloud / DORA, *Accelerate State of DevOps Report 2023*, "Software delivery
performance" cluster table (Elite, High, Medium, Low). The report gives ranges; where its ranges
touch or overlap (the Low cluster repeats Medium's throughput ranges), a value gets the best level
whose bound it meets, so every value has exactly one level.
"""

from __future__ import annotations

from dataclasses import dataclass

REPORT = "Accelerate State of DevOps Report 2023 (DORA)"
LEVELS = ("Elite", "High", "Medium", "Low")
HOUR, DAY = 3600.0, 86400.0
WEEK, MONTH = 7 * DAY, 30 * DAY


@dataclass(frozen=True)
class Threshold:
    """Bounds for Elite, High and Medium; anything worse is Low."""

    metric: str
    higher_is_better: bool
    bounds: tuple[float, float, float]
    report_text: tuple[str, str, str, str]
    inclusive: bool = False  # does a value equal to a bound reach that level ("5%" includes 5%)

    def meets(self, value: float, bound: float) -> bool:
        """Does the value reach the level with this bound."""
        if self.higher_is_better:
            return value >= bound
        return value <= bound if self.inclusive else value < bound


THRESHOLDS: dict[str, Threshold] = {
    # deployments per day
    "deployment_frequency": Threshold(
        "deployment_frequency",
        True,
        (1.0, 1 / 7, 1 / 30),
        (
            "On demand (multiple deploys per day)",
            "Between once per day and once per week",
            "Between once per week and once per month",
            "Between once per week and once per month (or less often)",
        ),
    ),
    # seconds, first commit to running in production
    "lead_time": Threshold(
        "lead_time",
        False,
        (DAY, WEEK, MONTH),
        ("Less than one day", "Between one day and one week", "Between one week and one month", "More"),
    ),
    # fraction of deployments that needed remediation
    "change_failure_rate": Threshold(
        "change_failure_rate", False, (0.05, 0.10, 0.15), ("5%", "10%", "15%", "64%"), inclusive=True
    ),
    # seconds, failure start to restored
    "recovery_time": Threshold(
        "recovery_time",
        False,
        (HOUR, DAY, WEEK),
        ("Less than one hour", "Less than one day", "Between one day and one week", "Between one month and six months"),
    ),
}


def level(metric: str, value: float | None) -> str | None:
    """The level of one metric's value; None when there is no value to judge."""
    if value is None:
        return None
    t = THRESHOLDS[metric]
    for name, bound in zip(LEVELS, t.bounds, strict=False):
        if t.meets(value, bound):
            return name
    return "Low"


def overall(levels: dict[str, str | None]) -> str | None:
    """The mean of the known levels (Elite=4 .. Low=1), rounded down: one weak key pulls the team down."""
    scores = [4 - LEVELS.index(v) for v in levels.values() if v]
    if not scores:
        return None
    return LEVELS[4 - int(sum(scores) / len(scores))]
