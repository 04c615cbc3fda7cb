"""The alerts page, /alerts/: what fires now (since when, acknowledged by whom, escalation step, the log
lines behind it), the notifications of the last 24 hours, one day's history, the silences in force,
and forms to acknowledge, silence and unsilence.

Alerts quote log lines and keys (loggers, hosts, user names), so seeing them needs `dora.view_logs`,
like the log console; acting needs `dora.manage_alerts`; 403 without either. Actions are CSRF-checked
POSTs answered with a redirect (a reload never repeats one), recorded with the user's name and the
time in Cassandra and in the dashboard's log.

The state is iact-alert's (iact.alerting.state and .history), read through the log console's session.
Every query names its partition (a rule, a day) or reads a small state table (one row per key that ever
fired, per silence, per installation), so the page's cost does not grow with the history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from cassandra import DriverException, InvalidRequest, Unauthorized
from cassandra.cluster import NoHostAvailable
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from iact.alerting.history import Event, History
from iact.alerting.query import ALL_KEYS
from iact.alerting.rules import RULE_NAME, parse_duration
from iact.alerting.state import Ack, KeyState, NotFiring, Silence, StateStore
from iact.cassandra.session import CassandraAuthFailed, CassandraUnavailable
from iact.dora.logs.connection import ConsoleOff, get_search

log = logging.getLogger(__name__)

SILENCE_FOR = ("15m", "1h", "4h", "1d")
MAX_SILENCE = timedelta(days=30)
MAX_KEY = 500  # keys are log values (a logger, a host); longer ones are no key the alerter made
UNREACHABLE = (ConsoleOff, CassandraUnavailable, CassandraAuthFailed, NoHostAvailable, DriverException)
TABLE_OF = {"ack": "alert_acks", "silence": "alert_silences", "unsilence": "alert_silences"}


@dataclass(frozen=True)
class Firing:
    """One firing (rule, key) as the page shows it."""

    rule: str
    key: str
    state: KeyState
    ack: Ack | None  # of this episode only
    silence: Silence | None
    severity: str
    logs_path: str

    @property
    def since_iso(self) -> str:
        """The episode, as the acknowledge form sends it back (an ack then covers only what was shown)."""
        return self.state.since.isoformat() if self.state.since else ""

    @property
    def told(self) -> str:
        """The channels notified during this episode."""
        return ", ".join(sorted(self.state.notified))


def _stores() -> tuple[StateStore, History]:
    search = get_search()
    return StateStore(search.session, search.keyspace), History(search.session, search.keyspace)


def _day(raw: str, today: date) -> date:
    if not raw:
        return today
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"day={raw[:40]!r} is not a date: write e.g. {today.isoformat()}") from None


def _firing(store: StateStore, silences: list[Silence], recent: list[Event], now: datetime) -> list[Firing]:
    """Every firing key, longest firing first, with its ack (this episode's only) and any silence holding it."""
    states = store.firing()
    acks = store.acks_of(sorted({rule for rule, _ in states}))  # one partition per rule, read at once
    severity: dict[tuple[str, str], str] = {}
    for e in recent:  # newest first: the first seen is the current one
        severity.setdefault((e.rule, e.key), e.severity)
    out = []
    for (rule, key), state in states.items():
        ack = acks[rule].get(key)
        out.append(Firing(
            rule, key, state, ack if ack and ack.since == state.since else None,
            next((s for s in silences if s.covers(rule, key)), None), severity.get((rule, key), ""),
            state.logs_path if state.logs_path.startswith("/logs/?") else "",
        ))  # fmt: skip
    return sorted(out, key=lambda f: (f.state.since or now, f.rule, f.key))


def _events(history: History, now: datetime, day: date) -> tuple[list[Event], list[Event]]:
    """The last 24 hours, and the chosen day; today's partition is read once when it is both."""
    today = now.date()
    todays = history.day(today)
    recent = todays + history.day(today - timedelta(days=1), since=now - timedelta(days=1))
    return recent, todays if day == today else history.day(day)


def _trouble(exc: Exception) -> str:
    """What went wrong with Cassandra, and what to do about it."""
    if isinstance(exc, ConsoleOff):
        return str(exc)
    if isinstance(exc, InvalidRequest):
        return (
            f"Cassandra refused the query ({exc}): the keyspace may predate cql/0007_alert_console.cql; apply it "
            "with `iact-schema apply` (the cassandra_cluster role)"
        )
    return f"Cassandra did not answer: {exc}"


def _unreachable(request: HttpRequest, exc: Exception) -> HttpResponse:
    return render(request, "dora/alerts.html", {"error": _trouble(exc)}, status=503)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("dora.view_logs", raise_exception=True)
def alerts(request: HttpRequest) -> HttpResponse:
    """The page (GET, `?day=YYYY-MM-DD` for the history), or one action (POST) redirected back to it."""
    if request.method == "POST":
        return _act(request)
    now = timezone.now().astimezone(UTC)
    try:
        day = _day(request.GET.get("day", ""), now.date())
    except ValueError as exc:
        return render(request, "dora/alerts.html", {"error": str(exc)}, status=400)
    try:
        store, history = _stores()
        recent, day_events = _events(history, now, day)
        silences = store.silences(now)
        context: dict[str, Any] = {
            "now": now,
            "firing": _firing(store, silences, recent, now),
            "recent": recent,
            "day": day,
            "history": day_events,
            "silences": sorted(silences, key=lambda s: s.until),
            "runs": store.runs(),
            "silence_for": SILENCE_FOR,
            "all_keys": ALL_KEYS,
        }
    except UNREACHABLE as exc:
        return _unreachable(request, exc)
    return render(request, "dora/alerts.html", context)


def _duration(post: Any) -> timedelta:
    custom = post.get("custom", "").strip()
    raw = custom or post.get("duration", "")
    if not custom and raw not in SILENCE_FOR:
        raise ValueError(f"silence for {raw[:20]!r}: choose {', '.join(SILENCE_FOR)} or write a custom duration")
    seconds = _duration_seconds(raw)
    if seconds > MAX_SILENCE.total_seconds():
        raise ValueError(f"silence for {raw!r}: at most 30 days; silence again later, or disable the rule")
    span = timedelta(seconds=seconds)
    if span > MAX_SILENCE:
        raise ValueError(f"silence for {raw!r}: at most 30 days; silence again later, or disable the rule")
    return span


def _since(raw: str) -> datetime | None:
    """The episode start the form was rendered with; absent (an older page, a script) means the current one."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw[:40])
    except ValueError:
        raise ValueError(f"since={raw[:40]!r}: not a time; reload the page") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _duration_seconds(raw: str) -> int:
    """parse_duration, bounded before any timedelta is built (a huge number overflowed into a 500)."""
    if len(raw) > 12:
        raise ValueError(f"silence for {raw[:20]!r}: at most 30 days; silence again later, or disable the rule")
    return parse_duration(raw, "silence for")


def _refused(action: str, exc: Exception) -> str:
    account = settings.IACT_LOGS.username
    return (
        f"the dashboard's Cassandra account ({account}) may not write {TABLE_OF[action]} ({exc}). Run the "
        f"cassandra_cluster role (`iact-schema auth roles --reader {account} ...`): it grants the reader role MODIFY "
        "on alert_acks and alert_silences only; or set django_dora_logs_username (logs.username) to a role that has it"
    )


def _act(request: HttpRequest) -> HttpResponse:
    """Acknowledge, silence or unsilence one (rule, key); the answer is a redirect to the page."""
    if not request.user.has_perm("dora.manage_alerts"):
        raise PermissionDenied("acknowledging and silencing alerts needs the manage_alerts permission")
    post = request.POST
    action, rule, key = post.get("action", ""), post.get("rule", "").strip(), post.get("key", "") or ALL_KEYS
    who, now = request.user.get_username(), timezone.now().astimezone(UTC)
    back = reverse("alerts")
    try:
        if post.get("day"):
            back += "?" + urlencode({"day": _day(post["day"], now.date()).isoformat()})
        if action not in TABLE_OF:
            raise ValueError(f"action={action[:20]!r}: use ack, silence or unsilence")
        if not RULE_NAME.fullmatch(rule):
            raise ValueError(f"rule={rule[:70]!r}: give a rule name (letters, digits, '.', '_' or '-')")
        if len(key) > MAX_KEY:
            raise ValueError(f"the key is longer than {MAX_KEY} characters")
        store, _ = _stores()
        if action == "ack":
            since = _since(post.get("since", ""))
            ack = store.ack(rule, key, who, now, since=since)
            done = f"acknowledged {rule} [{key}] (firing since {ack.since:%Y-%m-%d %H:%M} UTC)"
        elif action == "silence":
            until = now + _duration(post)
            store.silence(rule, key, until, who, now)
            done = f"silenced {rule} [{key}] until {until:%Y-%m-%d %H:%M} UTC"
        else:
            store.unsilence(rule, key)
            done = f"lifted the silence of {rule} [{key}]"
    except (ValueError, NotFiring) as exc:  # RuleError is a ValueError
        messages.error(request, str(exc))
    except Unauthorized as exc:
        log.error("alerts: %s could not %s %s [%s]: %s", who, action, rule, key, exc)
        messages.error(request, _refused(action, exc))
    except UNREACHABLE as exc:
        messages.error(request, _trouble(exc))
    else:
        log.info("alerts: %s %s", who, done)
        messages.success(request, f"{done}, by {who}")
    return redirect(back)
