"""One evaluation run: windows since the watermark, each rule per window, state transitions, sends.

Windows end on multiples of the schedule interval, `query_delay` behind now, so rows that arrive
late (an agent replaying its spool) are counted. Each run first re-counts the last evaluated
window (late rows can make it fire), then every window missed since (a skipped cron run is caught
up, never skipped), up to `max_catchup`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from iact.alerting.config import AlertConfig
from iact.alerting.notify import Channel, Notification, deliver
from iact.alerting.query import ALL_KEYS, Span, WindowCounts, WindowQuery
from iact.alerting.rules import TABLES, Rule
from iact.alerting.state import KeyState, Silence, StateStore

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What happened, for the exit code and the log."""

    windows: list[datetime] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    silenced: list[Notification] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def window_ends(last: datetime | None, now: datetime, interval: int, delay: int, max_catchup: int) -> list[datetime]:
    """Aligned window ends to evaluate: the last one again, then every one since, oldest first."""
    step = timedelta(seconds=interval)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    target = epoch + step * ((now - timedelta(seconds=delay) - epoch) // step)
    if last is None or last > target:
        return [target]
    first = max(last, target - timedelta(seconds=max_catchup))
    first = epoch + step * ((first - epoch) // step)
    ends = []
    end = first
    while end <= target:
        ends.append(end)
        end += step
    return ends


def logs_link(dashboard_url: str, rule: Rule, key: str, start: datetime, end: datetime) -> str:
    """The log console (/logs/ on the dashboard's host) on the alert's window, table and filter, so the
    reader of a notice clicks through to the lines behind it. Empty when no dashboard is configured."""
    if not dashboard_url:
        return ""
    parts = urlsplit(dashboard_url)
    params = {"table": rule.table, "from": start.isoformat(), "to": end.isoformat()}
    params |= {c: v[0] for c, v in rule.filters.items() if len(v) == 1}
    if rule.group_by and key != ALL_KEYS:
        params[rule.group_by] = key
    return urlunsplit((parts.scheme, parts.netloc, "/logs/", urlencode(params), ""))


def _query_hint(rule: Rule, counts: WindowCounts, keyspace: str) -> str:
    where = [f"day = '{counts.start:%Y-%m-%d}'", f"ts >= '{counts.start:%Y-%m-%d %H:%M:%S}+0000'",
             f"ts < '{counts.end:%Y-%m-%d %H:%M:%S}+0000'"]  # fmt: skip
    where += [f"{c} = '{v[0]}'" for c, v in rule.filters.items() if len(v) == 1 and c != "host"]
    return f"SELECT * FROM {keyspace}.{TABLES[rule.table]} WHERE {' AND '.join(where)};"  # nosec B608 # shown, never run


class Evaluator:
    """Evaluates rules, moves state, sends through channels (or only prints, in dry-run)."""

    def __init__(
        self,
        conf: AlertConfig,
        query: WindowQuery,
        store: StateStore,
        channels: dict[str, Channel],
        dry_run: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.conf, self.query, self.store, self.channels = conf, query, store, channels
        self.dry_run = dry_run
        self.clock = clock

    def run(self) -> RunReport:
        """Every due window, oldest first; the watermark moves after each (unless dry-run)."""
        report = RunReport()
        now = self.clock()
        c = self.conf
        silences = self.store.silences(now)
        for end in window_ends(self.store.watermark(), now, c.interval, c.query_delay, c.max_catchup):
            report.windows.append(end)
            counts = self._counts(end)
            for rule in c.rules:
                self._rule(rule, counts[rule.name], now, silences, report)
            if not self.dry_run:
                self.store.set_watermark(end, "failed channels" if report.failures else "ok")
        return report

    def _counts(self, end: datetime) -> dict[str, WindowCounts]:
        """Every rule's counts for the window ending at `end`, each table read once for all of them."""
        spans = []
        for rule in self.conf.rules:
            start = end - timedelta(seconds=rule.window)
            spans.append(Span(rule.name, rule, start, end))
            if rule.kind == "flatline":
                spans.append(Span(f"{rule.name}\0before", rule, start - timedelta(seconds=rule.lookback), start))
        found = self.query.count_spans(spans)
        out = {}
        for rule in self.conf.rules:
            counts = found[rule.name]
            if rule.kind == "flatline":
                # Expected keys: those seen during the lookback before the window.
                for key in found[f"{rule.name}\0before"].counts:
                    counts.counts.setdefault(key, 0)
            elif rule.group_by is None:
                counts.counts.setdefault(ALL_KEYS, 0)
            out[rule.name] = counts
        return out

    def _rule(
        self, rule: Rule, counts: WindowCounts, now: datetime, silences: list[Silence], report: RunReport
    ) -> None:
        end = counts.end
        states = self.store.states(rule.name)
        for key, count in counts.counts.items():
            state = states.get(key)
            if rule.fires(count):
                if state is None or not state.firing:
                    self._notify(rule, key, "firing", count, counts, now, silences, report)
                    state = KeyState(True, end, now, count)
                elif state.last_notified is None or now - state.last_notified >= timedelta(seconds=rule.renotify):
                    self._notify(rule, key, "firing", count, counts, now, silences, report, renotify=True)
                    state = KeyState(True, state.since, now, count)
                else:
                    state = KeyState(True, state.since, state.last_notified, count)
                self._save(rule, key, state)
            elif state is not None and state.firing:
                self._notify(rule, key, "resolved", count, counts, now, silences, report)
                self._save(rule, key, KeyState(False, None, now, count))
        # Keys that fired before but have no rows at all now (frequency rules) have resolved too.
        for key, state in states.items():
            if state.firing and key not in counts.counts and rule.kind == "frequency":
                self._notify(rule, key, "resolved", 0, counts, now, silences, report)
                self._save(rule, key, KeyState(False, None, now, 0))

    def _save(self, rule: Rule, key: str, state: KeyState) -> None:
        if not self.dry_run:
            self.store.save(rule.name, key, state)

    def _notify(
        self, rule: Rule, key: str, status: str, count: int, counts: WindowCounts, now: datetime,
        silences: list[Silence], report: RunReport, renotify: bool = False,
    ) -> None:  # fmt: skip
        n = Notification(
            rule=rule.name, key=key, status=status, severity=rule.severity, count=count, threshold=rule.threshold,
            kind=rule.kind, window_start=counts.start.isoformat(), window_end=counts.end.isoformat(),
            samples=counts.samples(key)[:3], query=_query_hint(rule, counts, self.conf.keyspace),
            link=logs_link(self.conf.dashboard_url, rule, key, counts.start, counts.end), renotify=renotify,
        )  # fmt: skip
        if any(s.rule == rule.name and s.key in (key, ALL_KEYS) for s in silences):
            report.silenced.append(n)
            log.info("silenced: %s", n.title())
            return
        report.notifications.append(n)
        if self.dry_run:
            print(f"--- would send to {', '.join(rule.channels)} ---\n{n.text()}\n")
            return
        for name in rule.channels:
            channel = self.channels.get(name)
            if channel is None:
                continue  # the channel is not configured on this installation
            error = deliver(channel, n, self.conf.attempts, self.conf.backoff)
            if error:
                report.failures.append(f"{name}: {error}")
                log.error("%s: giving up on %s: %s", name, n.title(), error)
            else:
                log.info("%s: sent %s", name, n.title())
