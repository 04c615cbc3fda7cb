"""The DORA reports' software delivery performance clusters, as data, one table per report year.

Each report describes its four clusters (Elite, High, Medium, Low) in words; the words are kept
verbatim in `text`, and `rule` is how this dashboard reads them as numbers, so a reader can check
one against the other. Installations pick a year (`benchmark` in dora.yaml, the role's
`django_dora_benchmark`); the newest is the default.

How the words become numbers:

- Ranges ("Less than one day", "Between once per week and once per month") become bounds; a value
  gets the best level whose bound it meets. Where the report gives two clusters the same range
  (2023: Low repeats Medium's throughput; 2024: Medium repeats High's recovery time), the better
  level wins and the worse one is reached only by values outside every better range.
- "On demand" for deployment frequency is read as more than one deployment a day on average: one
  a day is the top of High's "between once per day and once per week".
- Change failure rate is one typical value per cluster, not a range (2024 even gives Medium a
  lower rate than High). A rate gets the cluster whose typical value is nearest; ties go to the
  better cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("Elite", "High", "Medium", "Low")
METRICS = ("deployment_frequency", "lead_time", "change_failure_rate", "recovery_time")
HOUR, DAY = 3600.0, 86400.0
WEEK, MONTH = 7 * DAY, 30 * DAY


@dataclass(frozen=True)
class MetricTable:
    """One metric's row of a cluster table: the report's words and the numbers read from them.

    `bounds` (Elite, High, Medium) for ranges: deployments per day (higher is better, `>=`, or `>`
    when `strict`) or seconds (lower is better, `<`). `typical` (Elite, High, Medium, Low) for
    change failure rate: the nearest typical value decides.
    """

    text: tuple[str, str, str, str]
    higher_is_better: bool = False
    bounds: tuple[float, ...] = ()
    strict: bool = False
    typical: tuple[float, ...] = ()

    def level(self, value: float) -> str:
        """The level of one value under this row."""
        if self.typical:
            distances = [abs(value - t) for t in self.typical]
            return LEVELS[distances.index(min(distances))]  # index() takes the first: ties go up
        for name, bound in zip(LEVELS, self.bounds, strict=False):
            if self._meets(value, bound):
                return name
        return "Low"

    def _meets(self, value: float, bound: float) -> bool:
        if self.higher_is_better:
            return value > bound if self.strict else value >= bound
        return value < bound


@dataclass(frozen=True)
class Benchmark:
    """One report's cluster table, cited in the report's own terms."""

    year: str
    citation: str
    tables: dict[str, MetricTable]


_DF_TEXT_HIGH = "Between once per day and once per week"
_DF_TEXT_MEDIUM = "Between once per week and once per month"

BENCHMARKS: dict[str, Benchmark] = {
    "2023": Benchmark(
        "2023",
        "Google Cloud / DORA, Accelerate State of DevOps Report 2023, software delivery performance clusters",
        {
            # deployments per day
            "deployment_frequency": MetricTable(
                ("On demand", _DF_TEXT_HIGH, _DF_TEXT_MEDIUM, _DF_TEXT_MEDIUM),
                higher_is_better=True,
                bounds=(1.0, 1 / 7, 1 / 30),
                strict=True,
            ),
            # seconds, commit to running in production
            "lead_time": MetricTable(
                (
                    "Less than one day",
                    "Between one day and one week",
                    "Between one week and one month",
                    "Between one week and one month",
                ),
                bounds=(DAY, WEEK, MONTH),
            ),
            # fraction of deployments that needed remediation
            "change_failure_rate": MetricTable(("5%", "10%", "15%", "64%"), typical=(0.05, 0.10, 0.15, 0.64)),
            # seconds, failure to restored
            "recovery_time": MetricTable(
                (
                    "Less than one hour",
                    "Less than one day",
                    "Between one day and one week",
                    "Between one month and six months",
                ),
                bounds=(HOUR, DAY, WEEK),
            ),
        },
    ),
    "2024": Benchmark(
        "2024",
        "Google Cloud / DORA, Accelerate State of DevOps Report 2024, software delivery performance clusters",
        {
            "deployment_frequency": MetricTable(
                ("On demand", _DF_TEXT_HIGH, _DF_TEXT_MEDIUM, "Between once per month and once every six months"),
                higher_is_better=True,
                bounds=(1.0, 1 / 7, 1 / 30),
                strict=True,
            ),
            "lead_time": MetricTable(
                (
                    "Less than one day",
                    "Between one day and one week",
                    "Between one week and one month",
                    "Between one month and six months",
                ),
                bounds=(DAY, WEEK, MONTH),
            ),
            "change_failure_rate": MetricTable(("5%", "20%", "10%", "40%"), typical=(0.05, 0.20, 0.10, 0.40)),
            # Medium's "Less than one day" equals High's: below a day is High, so Medium is unreachable.
            "recovery_time": MetricTable(
                ("Less than one hour", "Less than one day", "Less than one day", "Between one week and one month"),
                bounds=(HOUR, DAY, DAY),
            ),
        },
    ),
}
NEWEST = max(BENCHMARKS)


def get(year: str) -> Benchmark:
    """The table of one report year; the error names the years there are."""
    try:
        return BENCHMARKS[year]
    except KeyError:
        raise ValueError(f"benchmark {year!r}: use one of {', '.join(sorted(BENCHMARKS))}") from None
