"""Validation of posted events: every error names the field and says what to send instead.

Returns plain dataclasses, so recording (record.py) never sees an unchecked value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

STATUSES = ("success", "failed", "rolled_back")
DEFAULT_SOURCE = "api"
SOURCE_MAX_LENGTH = 32  # the column's width
# Times outside this range are typos (or attacks on the date arithmetic); the database's DATETIME
# ends at 9999, and converting a far time to UTC can overflow Python's datetime.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_SLUG_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
_SHOWN_CHARS = 60


def shown(value: object) -> str:
    """A value quoted in an error message, cut short: errors must not echo megabytes back."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


class EventError(ValueError):
    """The event is invalid; `errors` maps each bad field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class CommitEvent:
    """A commit a deployment shipped."""

    sha: str
    committed_at: datetime


@dataclass(frozen=True)
class DeploymentEvent:
    """A deployment as sent by CI/CD."""

    external_id: str
    service: str
    environment: str
    started_at: datetime
    finished_at: datetime
    status: str
    source: str = DEFAULT_SOURCE
    version: str = ""
    sha: str = ""
    url: str = ""
    commits: tuple[CommitEvent, ...] = field(default_factory=tuple)
    sender_updated_at: datetime | None = None  # the sender's time of this state; older ones are ignored


@dataclass(frozen=True)
class IncidentEvent:
    """A failure in production as sent by incident tooling."""

    external_id: str
    service: str
    opened_at: datetime
    restored_at: datetime | None
    source: str = DEFAULT_SOURCE
    title: str = ""
    url: str = ""
    deployment_id: str = ""
    sender_updated_at: datetime | None = None


class _Reader:
    """Collects every error of one event instead of stopping at the first."""

    def __init__(self, data: object, prefix: str = "") -> None:
        self.data = data if isinstance(data, dict) else {}
        self.prefix = prefix
        self.errors: dict[str, str] = {}
        if not isinstance(data, dict):
            self.errors[prefix.rstrip(".") or "body"] = "expected a JSON object"

    def text(self, name: str, required: bool = False, max_length: int = 191, default: str = "") -> str:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                self.errors[self.prefix + name] = "required"
            return default
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                self.errors[self.prefix + name] = f"expected a string, got the number {value}"
                return default
            value = repr(value) if isinstance(value, float) else _int_text(value)
            if value is None:
                self.errors[self.prefix + name] = "expected a string, got a number too long to be an id"
                return default
        if not isinstance(value, str):
            self.errors[self.prefix + name] = f"expected a string, got {_kind(value)}"
            return default
        if len(value) > max_length:
            self.errors[self.prefix + name] = f"at most {max_length} characters, got {len(value)}"
            return default
        if not _encodable(value):
            self.errors[self.prefix + name] = (
                "not valid Unicode (an unpaired surrogate such as \\ud800); send UTF-8 text"
            )
            return default
        return value

    def slug(self, name: str, default: str = "", required: bool = False, max_length: int = 100) -> str:
        value = self.text(name, required=required, max_length=max_length, default=default).strip().lower()
        if value and not set(value) <= _SLUG_OK:
            self.errors[self.prefix + name] = (
                f"{shown(value)}: use lowercase letters, digits, '-' and '_' (e.g. {shown(slugify(value))})"
            )
        return value

    def time(self, name: str, required: bool = True) -> datetime | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                self.errors[self.prefix + name] = (
                    "required: an ISO 8601 time with a UTC offset, e.g. 2026-11-23T10:00:00Z"
                )
            return None
        if not isinstance(value, str):
            self.errors[self.prefix + name] = f"expected an ISO 8601 time as a string, got {_kind(value)}"
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.errors[self.prefix + name] = f"{shown(value)} is not an ISO 8601 time; send e.g. 2026-11-23T10:00:00Z"
            return None
        if moment.tzinfo is None:
            self.errors[self.prefix + name] = (
                f"{shown(value)} has no UTC offset; add one, e.g. {value}Z or {value}+01:00"
            )
            return None
        if not EARLIEST <= moment < LATEST:  # comparing aware times never overflows; converting them can
            self.errors[self.prefix + name] = f"{shown(value)} is not between 1970 and 2199; check the clock"
            return None
        return moment


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _int_text(value: int) -> str | None:
    """str(value), or None past the interpreter's limit on printing integers."""
    try:
        return str(value)
    except ValueError:
        return None


def _encodable(value: str) -> bool:
    """False for unpaired surrogates (JSON's \\ud800 escapes), which no UTF-8 column can store."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def slugify(value: str) -> str:
    """A service name as a slug: GitHub repository names may carry dots and capitals."""
    return "".join(c if c in _SLUG_OK else "-" for c in value.lower()).strip("-") or "service"


def parse_event(data: object) -> DeploymentEvent | IncidentEvent:
    """One event: {"type": "deployment"|"incident", ...}; raises EventError naming the fields.

    A value that is not an object is refused under the key "" (the caller names it: body, events[i]).
    """
    if not isinstance(data, dict):
        raise EventError({"": f'expected a JSON object {{"type": ..., "id": ...}}, got {_kind(data)}'})
    kind = data.get("type")
    if kind == "deployment":
        return parse_deployment(data)
    if kind == "incident":
        return parse_incident(data)
    raise EventError({"type": f"expected 'deployment' or 'incident', got {shown(kind)}"})


def parse_deployment(data: object) -> DeploymentEvent:
    """Validate a deployment event."""
    r = _Reader(data)
    started, finished = r.time("started_at", required=False), r.time("finished_at")
    status = r.text("status", default="success")
    if status not in STATUSES:
        r.errors["status"] = f"{shown(status)}: expected one of {', '.join(STATUSES)}"
    if started and finished and started > finished:
        r.errors["started_at"] = "after finished_at; send the time the deployment began"
    commits = []
    raw_commits = r.data.get("commits") or []
    if not isinstance(raw_commits, list):
        r.errors["commits"] = "expected a list of {sha, committed_at}"
        raw_commits = []
    for i, raw in enumerate(raw_commits):
        c = _Reader(raw, f"commits[{i}].")
        sha, at = c.text("sha", required=True, max_length=64), c.time("committed_at")
        r.errors.update(c.errors)
        if sha and at:
            if finished and at > finished:
                r.errors[f"commits[{i}].committed_at"] = "after the deployment finished; check the clock or the sha"
            commits.append(CommitEvent(sha, at))
    event = DeploymentEvent(
        external_id=r.text("id", required=True),
        service=r.slug("service", required=True),
        environment=r.text("environment", default="production", max_length=64),
        started_at=started or finished,  # type: ignore[arg-type]
        finished_at=finished,  # type: ignore[arg-type]
        status=status,
        source=r.slug("source", max_length=SOURCE_MAX_LENGTH),  # "": the token's source (see scope.py)
        version=r.text("version", max_length=128),
        sha=r.text("sha", max_length=64),
        url=r.text("url", max_length=500),
        commits=tuple(commits),
    )
    if r.errors:
        raise EventError(r.errors)
    return event


def parse_incident(data: object) -> IncidentEvent:
    """Validate an incident event."""
    r = _Reader(data)
    opened, restored = r.time("opened_at"), r.time("restored_at", required=False)
    if opened and restored and restored < opened:
        r.errors["restored_at"] = "before opened_at; send the time service was restored"
    event = IncidentEvent(
        external_id=r.text("id", required=True),
        service=r.slug("service", required=True),
        opened_at=opened,  # type: ignore[arg-type]
        restored_at=restored,
        source=r.slug("source", max_length=SOURCE_MAX_LENGTH),  # "": the token's source (see scope.py)
        title=r.text("title", max_length=300),
        url=r.text("url", max_length=500),
        deployment_id=r.text("deployment_id"),
    )
    if r.errors:
        raise EventError(r.errors)
    return event
