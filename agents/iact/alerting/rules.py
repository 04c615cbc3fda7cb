"""Alert rules as data: a YAML list validated on load, with the seeds' three rules and host-silent built in.

Every error names the rule and the field, because the reader is an operator editing rules.yaml.
A rule with a built-in's name replaces it; `{name: host-silent, enabled: false}` switches one off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TABLES = {"application": "application_logs", "infrastructure": "infrastructure_logs"}
# Which columns a rule may filter or group on, per table.
COLUMNS = {
    "application": ("host", "app", "level", "logger"),
    "infrastructure": ("host", "source", "severity", "program", "unit"),
}
KINDS = ("frequency", "flatline")
SEVERITIES = ("info", "warning", "critical")
CHANNELS = ("slack", "email", "log")
RULE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class RuleError(ValueError):
    """A rule is wrong; the message names the rule and the field."""


@dataclass(frozen=True)
class Step:
    """One escalation step: once a key has fired `after` seconds unacknowledged, tell `channels` too."""

    after: int
    channels: tuple[str, ...]


def parse_duration(value: object, where: str) -> int:
    """'5m', '2h', '30s', '1d' or a number of seconds -> seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _DURATION.match(str(value).strip())
    if not m or int(m.group(1)) == 0:
        raise RuleError(f"{where}: {value!r} is not a duration; write e.g. 30s, 5m, 2h or 1d")
    return int(m.group(1)) * _UNIT[m.group(2)]


@dataclass(frozen=True)
class Rule:
    """frequency: fire when count > threshold; flatline: fire when count < threshold (per key)."""

    name: str
    kind: str
    table: str
    window: int
    threshold: int
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    group_by: str | None = None
    severity: str = "warning"
    channels: tuple[str, ...] = CHANNELS
    renotify: int = 3600
    lookback: int = 3600  # flatline: keys seen this long before the window are expected
    description: str = ""
    escalation: tuple[Step, ...] = ()  # `after` increasing

    def fires(self, count: int) -> bool:
        """Above the threshold (frequency) or below it (flatline); equal never fires."""
        return count > self.threshold if self.kind == "frequency" else count < self.threshold


BUILTIN: tuple[dict[str, Any], ...] = (
    {"name": "errors", "table": "application", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 10,
     "severity": "warning", "description": "More than 10 ERROR records in 5 minutes"},
    {"name": "criticals", "table": "application", "filter": {"level": "CRITICAL"}, "window": "5m", "threshold": 5,
     "severity": "critical", "description": "More than 5 CRITICAL records in 5 minutes"},
    {"name": "logger-loop", "table": "application", "window": "5m", "threshold": 100, "group_by": "logger",
     "severity": "warning", "description": "More than 100 records from one logger in 5 minutes (a loop?)"},
    # Every collector writes a metrics row each minute (collector_agent_metrics_interval); a host that
    # did during the last hour and wrote none for 5 minutes has a dead or stuck agent (or is down).
    {"name": "host-silent", "kind": "flatline", "table": "infrastructure",
     "filter": {"source": "metrics", "program": "iact-collector"}, "group_by": "host", "window": "5m",
     "lookback": "1h", "threshold": 1, "severity": "critical",
     "description": "A host whose collector wrote metrics in the last hour wrote none for 5 minutes"},
)  # fmt: skip

_KEYS = {"name", "kind", "table", "filter", "window", "threshold", "group_by", "severity", "channels", "renotify",
         "lookback", "description", "enabled", "escalation"}  # fmt: skip


def _named(data: object, index: int) -> tuple[str, dict[str, Any]]:
    """The rule's name and mapping, its fields known; RuleError otherwise."""
    if not isinstance(data, dict):
        raise RuleError(f"rule #{index + 1}: expected a mapping with name, table, window, threshold")
    name = data.get("name")
    if not isinstance(name, str) or not RULE_NAME.fullmatch(name):
        raise RuleError(f"rule #{index + 1}: name: give a name of letters, digits, '.', '_' or '-'")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise RuleError(f"rule {name!r}: {unknown[0]}: unknown field; known fields are {', '.join(sorted(_KEYS))}")
    if not isinstance(data.get("enabled", True), bool):
        raise RuleError(f"rule {name!r}: enabled: give true or false")
    return name, data


def parse_escalation(value: object, where: str) -> tuple[Step, ...]:
    """`[{after: 15m, channels: [email]}, ...]` -> steps; each `after` later than the one before, since a
    step is sent once the episode is that old and the steps are sent in order."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RuleError(f"{where}: escalation: expected a list of steps like {{after: 15m, channels: [email]}}")
    steps: list[Step] = []
    for i, raw in enumerate(value):
        at = f"{where}: escalation[{i}]"
        if not isinstance(raw, dict):
            raise RuleError(f"{at}: expected a mapping with after and channels, e.g. {{after: 15m, channels: [email]}}")
        unknown = sorted(set(raw) - {"after", "channels"})
        if unknown:
            raise RuleError(f"{at}: {unknown[0]}: unknown field; a step has after and channels")
        if "after" not in raw:
            raise RuleError(f"{at}: after: say how long a key fires unacknowledged before this step, e.g. 15m")
        after = parse_duration(raw["after"], f"{at}: after")
        if steps and after <= steps[-1].after:
            raise RuleError(
                f"{at}: after: {raw['after']!r} is not later than the step before ({steps[-1].after} s); "
                "list the steps in increasing `after`"
            )
        channels = raw.get("channels")
        if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
            raise RuleError(f"{at}: channels: list some of {', '.join(CHANNELS)}")
        steps.append(Step(after, tuple(channels)))
    return tuple(steps)


def parse_rule(data: object, index: int) -> Rule:
    """One mapping -> Rule, or RuleError naming the rule and field."""
    name, data = _named(data, index)
    where = f"rule {name!r}"
    kind = data.get("kind", "frequency")
    if kind not in KINDS:
        raise RuleError(f"{where}: kind: {kind!r} must be one of {', '.join(KINDS)}")
    table = data.get("table", "application")
    if table not in TABLES:
        raise RuleError(f"{where}: table: {table!r} must be application or infrastructure")
    filters: dict[str, tuple[str, ...]] = {}
    raw_filter = data.get("filter") or {}
    if not isinstance(raw_filter, dict):
        raise RuleError(f"{where}: filter: expected a mapping of column: value (or a list of values)")
    for column, value in raw_filter.items():
        if column not in COLUMNS[table]:
            raise RuleError(
                f"{where}: filter.{column}: not a column of {table} logs; use one of {', '.join(COLUMNS[table])}"
            )
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int) for v in values):
            raise RuleError(f"{where}: filter.{column}: give a value or a list of values")
        filters[column] = tuple(str(v) for v in values)
    threshold = data.get("threshold")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
        raise RuleError(f"{where}: threshold: give a whole number of records (>= 0)")
    group_by = data.get("group_by")
    if group_by is not None and group_by not in COLUMNS[table]:
        raise RuleError(f"{where}: group_by: {group_by!r} is not one of {', '.join(COLUMNS[table])}")
    if kind == "flatline" and group_by is None:
        raise RuleError(f"{where}: group_by: a flatline rule needs a key (e.g. host) to know who went silent")
    severity = data.get("severity", "warning")
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: severity: {severity!r} must be one of {', '.join(SEVERITIES)}")
    channels = data.get("channels", list(CHANNELS))
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        raise RuleError(f"{where}: channels: list some of {', '.join(CHANNELS)}")
    return Rule(
        name=name,
        kind=kind,
        table=table,
        window=parse_duration(data.get("window", "5m"), f"{where}: window"),
        threshold=threshold,
        filters=filters,
        group_by=group_by,
        severity=severity,
        channels=tuple(channels),
        renotify=parse_duration(data.get("renotify", "1h"), f"{where}: renotify"),
        lookback=parse_duration(data.get("lookback", "1h"), f"{where}: lookback"),
        description=str(data.get("description", "")),
        escalation=parse_escalation(data.get("escalation"), where),
    )


def parse_rules(items: object, include_builtin: bool = True) -> list[Rule]:
    """A list of rule mappings; a rule with a built-in's name replaces it, `enabled: false` drops it."""
    if items is None:
        items = []
    if not isinstance(items, list):
        raise RuleError("rules: expected a list of rules")
    rules = {r.name: r for r in (parse_rule(d, i) for i, d in enumerate(BUILTIN))} if include_builtin else {}
    seen: set[str] = set()
    for i, data in enumerate(items):
        name, mapping = _named(data, i)
        if name in seen:
            raise RuleError(f"rule {name!r}: name: used twice; rule names must be unique")
        seen.add(name)
        if mapping.get("enabled", True):
            rules[name] = parse_rule(mapping, i)
        else:  # switched off: only the name matters, the other fields may stay for switching it on again
            rules.pop(name, None)
    return list(rules.values())


def load_rules(path: str | Path, include_builtin: bool = True) -> list[Rule]:
    """Read a rules YAML file (a list, or a mapping with `rules:`)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"cannot read rules file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RuleError(f"rules file {path} is not valid YAML: {exc}") from exc
    if isinstance(data, dict):
        include_builtin = bool(data.get("builtin", include_builtin))
        data = data.get("rules")
    try:
        return parse_rules(data, include_builtin)
    except RuleError as exc:
        raise RuleError(f"{path}: {exc}") from exc
