"""One evaluation run: windows since the watermark, each rule per window, state transitions, sends.

Windows end on multiples of the schedule interval, `query_delay` behind now, so rows that arrive
late (an agent replaying its spool) are counted. Each run first re-counts the last evaluated
window (late rows can make it fire), then every window missed since (a skipped cron run is caught
up, never skipped), up to `max_catchup`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from iact.alerting.config import AlertConfig
from iact.alerting.history import Event, History
from iact.alerting.notify import Channel, Notification, deliver
from iact.alerting.query import ALL_KEYS, Span, WindowCounts, WindowQuery
from iact.alerting.rules import TABLES, Rule
from iact.alerting.runbooks import runbook_link
from iact.alerting.state import Ack, KeyState, Silence, StateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """What one notice reached: the channels tried, those that took it, and whether a silence held it."""

    tried: frozenset[str] = frozenset()
    delivered: frozenset[str] = frozenset()
    silenced: bool = False


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


def logs_path(rule: Rule, key: str, start: datetime, end: datetime) -> str:
    """/logs/?... on the alert's window, table and filter: the log console's page of the lines behind it."""
    params = {"table": rule.table, "from": start.isoformat(), "to": end.isoformat()}
    params |= {c: v[0] for c, v in rule.filters.items() if len(v) == 1}
    if rule.group_by and key != ALL_KEYS:
        params[rule.group_by] = key
    return "/logs/?" + urlencode(params)


def logs_link(dashboard_url: str, rule: Rule, key: str, start: datetime, end: datetime) -> str:
    """The log console (/logs/ on the dashboard's host) on the alert's window, table and filter, so the
    reader of a notice clicks through to the lines behind it. Empty when no dashboard is configured."""
    if not dashboard_url:
        return ""
    parts = urlsplit(dashboard_url)
    query = logs_path(rule, key, start, end).partition("?")[2]
    return urlunsplit((parts.scheme, parts.netloc, "/logs/", query, ""))


def _query_hint(rule: Rule, counts: WindowCounts, keyspace: str) -> str:
    where = [f"day = '{counts.start:%Y-%m-%d}'", f"ts >= '{counts.start:%Y-%m-%d %H:%M:%S}+0000'",
             f"ts < '{counts.end:%Y-%m-%d %H:%M:%S}+0000'"]  # fmt: skip
    where += [f"{c} = '{v[0]}'" for c, v in rule.filters.items() if len(v) == 1 and c != "host"]
    return f"SELECT * FROM {keyspace}.{TABLES[rule.table]} WHERE {' AND '.join(where)};"  # nosec B608 # shown, never run


class Evaluator:
    """Evaluates rules, moves state, sends through channels (or only prints, in dry-run).

    A firing key is told to the rule's channels once, again after `renotify`, and to each escalation
    step's channels once the episode is as old as the step's `after`, until someone acknowledges the
    episode (which stops both) or it resolves; the resolved notice goes to every channel told.
    """

    def __init__(
        self,
        conf: AlertConfig,
        query: WindowQuery,
        store: StateStore,
        channels: dict[str, Channel],
        dry_run: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        history: History | None = None,
    ) -> None:
        self.conf, self.query, self.store, self.channels = conf, query, store, channels
        self.dry_run = dry_run
        self.clock = clock
        self.history = history if history is not None else History(store.s, store.ks)
        self._acks: dict[str, dict[str, Ack]] = {}
        self._failed_steps: set[tuple[str, str, int]] = set()  # (rule, key, step) no channel took this run; step 0:
        # the rule's own notice
        self._owed_tried: set[tuple[str, str]] = set()  # (rule, key) whose resolved notice was tried this run
        self._states: dict[str, dict[str, KeyState]] = {}  # per rule, read once per run, kept up to date
        self._latest_end: datetime | None = None  # the last window of the current run
        self._history_failed = False

    def run(self) -> RunReport:
        """Every due window, oldest first; the watermark moves after each (unless dry-run)."""
        report = RunReport()
        now = self.clock()
        c = self.conf
        silences = self.store.silences(now)
        self._acks = {}
        self._failed_steps, self._owed_tried, self._states = set(), set(), {}
        ends = window_ends(self.store.watermark(), now, c.interval, c.query_delay, c.max_catchup)
        self._latest_end = ends[-1] if ends else None
        for end in ends:
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
        if rule.name not in self._states:  # read once per run; each window of a catch-up run sees the last one's saves
            self._states[rule.name] = self.store.states(rule.name)
        states = self._states[rule.name]
        if rule.kind == "flatline":
            # A key silent for longer than the lookback is no longer among the expected ones, but one that is
            # firing is still silent: without this it would stay firing unseen (no renotify, no escalation).
            for key, state in states.items():
                if state.firing:
                    counts.counts.setdefault(key, 0)
        for key, state in list(states.items()):
            if not state.firing and state.notified:
                states[key] = self._owed_resolution(rule, key, state, counts, now, silences, report)
        for key, count in counts.counts.items():
            state = states.get(key)
            if rule.fires(count):
                state = self._firing(rule, key, state, count, counts, now, silences, report)
                # The page of firing alerts links the latest window it fired in (the engine alone knows the rule).
                self._save(rule, key, replace(state, logs_path=logs_path(rule, key, counts.start, counts.end)))
            elif state is not None and state.firing:
                self._resolve(rule, key, state, count, counts, now, silences, report)
        # Keys that fired before but have no rows at all now (frequency rules) have resolved too.
        for key, state in states.items():
            if state.firing and key not in counts.counts and rule.kind == "frequency":
                self._resolve(rule, key, state, 0, counts, now, silences, report)

    def _firing(
        self, rule: Rule, key: str, state: KeyState | None, count: int, counts: WindowCounts, now: datetime,
        silences: list[Silence], report: RunReport,
    ) -> KeyState:  # fmt: skip
        """The next state of a key past its threshold: first notice, renotify, then any escalation due."""
        if state is None or not state.firing:
            sent = self._notify(rule, key, "firing", count, counts, now, silences, report, rule.channels)
            # A resolution still owed (held by the same silence) stays owed: this episode's end tells them.
            owed = state.notified if state is not None else frozenset()
            # Held by a silence, or taken by no channel: told (tried again) at the next run, not a renotify later.
            told = self._told(rule, key, sent, counts.end, now)
            state = self._saved(rule, key, KeyState(True, counts.end, told, count, 0, sent.delivered | owed), counts)
        elif self._acked(rule, key, state):
            return replace(state, last_count=count)  # someone has it: no renotify, no escalation
        elif state.last_notified is None and (
            self._silenced(rule, key, silences) or (rule.name, key, 0) in self._failed_steps
        ):
            state = replace(state, last_count=count)  # still held, or tried already this run: quietly
        elif state.last_notified is None or now - state.last_notified >= timedelta(seconds=rule.renotify):
            sent = self._notify(rule, key, "firing", count, counts, now, silences, report, rule.channels, renotify=True)
            told = self._told(rule, key, sent, state.since or counts.end, now)
            state = replace(state, last_notified=told, last_count=count, notified=state.notified | sent.delivered)
            state = self._saved(rule, key, state, counts)
        else:
            state = replace(state, last_count=count)
        return self._escalate(rule, key, state, counts, now, silences, report)

    def _escalate(
        self, rule: Rule, key: str, state: KeyState, counts: WindowCounts, now: datetime, silences: list[Silence],
        report: RunReport,
    ) -> KeyState:  # fmt: skip
        """Send every step now due, in order (a late run sends all it missed); a silence holds them, unrecorded,
        so the steps still due go out when it ends.

        A step is taken only once a channel took it (a step nobody heard is tried again next run), and saved as
        it goes, so a run that dies between two steps does not send the first again.
        """
        if not rule.escalation or state.since is None or self._silenced(rule, key, silences):
            return state
        # The episode's age as of the window being evaluated: the run's clock for its latest window, and
        # that much earlier for each window it catches up on. Otherwise a run catching up on missed
        # windows sends, at the episode's first window, steps only due later (and sends them even when
        # a later window of the same run resolves the episode).
        behind = (self._latest_end - counts.end) if self._latest_end is not None else timedelta(0)
        age = now - behind - state.since
        steps = rule.escalation
        while state.step < len(steps) and age >= timedelta(seconds=steps[state.step].after):
            step = state.step + 1
            # A step nobody took is tried again next run (once per run), until the next step falls due or
            # `renotify` has passed since it did: then it is given up (its failure is in the history).
            moving_on = (step < len(steps) and age >= timedelta(seconds=steps[step].after)) or age >= timedelta(
                seconds=steps[step - 1].after + rule.renotify
            )
            attempt = (rule.name, key, step)
            if attempt in self._failed_steps:
                if not moving_on:
                    break
                sent = Sent()
            else:
                sent = self._notify(rule, key, "firing", state.last_count, counts, now, silences, report,
                                    steps[step - 1].channels, escalation=step, since=state.since)  # fmt: skip
                if not sent.delivered and not self.dry_run:
                    self._failed_steps.add(attempt)
                    if not moving_on:
                        break
            if not sent.delivered and not self.dry_run:
                log.warning("%s [%s]: escalation step %d reached nobody; giving it up", rule.name, key, step)
            # last_notified stays the rule's own notice's: a step must not postpone the rule's renotify.
            state = replace(state, step=step, notified=state.notified | sent.delivered)
            state = self._saved(rule, key, state, counts)
        return state

    def _told(self, rule: Rule, key: str, sent: Sent, since: datetime, now: datetime) -> datetime | None:
        """last_notified after the rule's own notice: None to send it again at the next run (a silence held it,
        or no channel took it, for up to `renotify` since the episode began), else now."""
        if sent.silenced:
            return None
        if sent.tried and not sent.delivered and not self.dry_run:
            self._failed_steps.add((rule.name, key, 0))
            if now - since < timedelta(seconds=rule.renotify):
                return None
        return now

    @staticmethod
    def _silenced(rule: Rule, key: str, silences: list[Silence]) -> bool:
        return any(s.covers(rule.name, key) for s in silences)

    def _owed_resolution(
        self, rule: Rule, key: str, state: KeyState, counts: WindowCounts, now: datetime, silences: list[Silence],
        report: RunReport,
    ) -> KeyState:  # fmt: skip
        """A resolution still owed: held by a silence, or not taken by a channel that heard the episode fire. It
        goes out once the silence is over (even if the key fires again meanwhile: that is a new episode, told on its
        own), once per run, until every such channel took it or `renotify` has passed since the episode ended."""
        if self._silenced(rule, key, silences) or (rule.name, key) in self._owed_tried:
            return state
        if state.last_notified is not None and now - state.last_notified >= timedelta(seconds=rule.renotify):
            log.warning(
                "%s [%s]: giving up the resolved notice to %s", rule.name, key, ", ".join(sorted(state.notified))
            )
            state = replace(state, notified=frozenset())
            self._save(rule, key, state)
            return state
        self._owed_tried.add((rule.name, key))
        told = tuple(sorted(state.notified))
        sent = self._notify(rule, key, "resolved", state.last_count, counts, now, silences, report, told)
        state = replace(state, notified=frozenset() if self.dry_run else state.notified - sent.delivered)
        self._save(rule, key, state)
        return state

    def _resolve(
        self, rule: Rule, key: str, state: KeyState, count: int, counts: WindowCounts, now: datetime,
        silences: list[Silence], report: RunReport,
    ) -> None:  # fmt: skip
        """Tell the rule's channels and every channel an escalation reached that it is over."""
        channels = (*rule.channels, *sorted(state.notified - set(rule.channels)))
        sent = self._notify(rule, key, "resolved", count, counts, now, silences, report, channels)
        # Held by a silence, or not taken by a channel that heard it fire: owed, sent again at a later run.
        owed = state.notified if sent.silenced else state.notified & (sent.tried - sent.delivered)
        self._owed_tried.add((rule.name, key))
        self._save(rule, key, KeyState(False, None, now, count, notified=owed))

    def _acked(self, rule: Rule, key: str, state: KeyState) -> bool:
        """Someone acknowledged this very episode (an ack of an earlier one does not count)."""
        if rule.name not in self._acks:
            self._acks[rule.name] = self.store.acks(rule.name)  # once per rule and run, only for firing rules
        ack = self._acks[rule.name].get(key)
        return ack is not None and state.since is not None and ack.since == state.since

    def _save(self, rule: Rule, key: str, state: KeyState) -> None:
        self._states.setdefault(rule.name, {})[key] = state  # what the run's later windows see (dry-run too)
        if not self.dry_run:
            self.store.save(rule.name, key, state)

    def _saved(self, rule: Rule, key: str, state: KeyState, counts: WindowCounts) -> KeyState:
        """A firing state saved right after a notice went out, linking the window it fired in."""
        state = replace(state, logs_path=logs_path(rule, key, counts.start, counts.end))
        self._save(rule, key, state)
        return state

    def _notify(
        self, rule: Rule, key: str, status: str, count: int, counts: WindowCounts, now: datetime,
        silences: list[Silence], report: RunReport, channels: tuple[str, ...], renotify: bool = False,
        escalation: int = 0, since: datetime | None = None,
    ) -> Sent:  # fmt: skip
        """Send one notice to `channels`: which were tried and which took it (none when a silence holds it)."""
        n = Notification(
            rule=rule.name, key=key, status=status, severity=rule.severity, count=count, threshold=rule.threshold,
            kind=rule.kind, window_start=counts.start.isoformat(), window_end=counts.end.isoformat(),
            samples=counts.samples(key)[:3], query=_query_hint(rule, counts, self.conf.keyspace),
            link=logs_link(self.conf.dashboard_url, rule, key, counts.start, counts.end), renotify=renotify,
            escalation=escalation, since=since.isoformat() if since else "",
            runbook=runbook_link(rule.name, self.conf.runbook_base),
        )  # fmt: skip
        if any(s.covers(rule.name, key) for s in silences):
            report.silenced.append(n)
            log.info("silenced: %s", n.title())
            self._record(rule, n, counts, now, "silenced", (), ())
            return Sent(silenced=True)
        report.notifications.append(n)
        if self.dry_run:
            print(f"--- would send to {', '.join(channels)} ---\n{n.text()}\n")
            return Sent()
        tried, failed = [], []
        for name in channels:
            channel = self.channels.get(name)
            if channel is None:
                continue  # the channel is not configured on this installation
            tried.append(name)
            error = deliver(channel, n, self.conf.attempts, self.conf.backoff)
            if error:
                failed.append(name)
                report.failures.append(f"{name}: {error}")
                log.error("%s: giving up on %s: %s", name, n.title(), error)
            else:
                log.info("%s: sent %s", name, n.title())
        event = "escalation" if escalation else "renotify" if renotify else status
        delivered = [c for c in tried if c not in failed]
        self._record(rule, n, counts, now, event, delivered, failed)
        return Sent(frozenset(tried), frozenset(delivered))

    def _record(
        self, rule: Rule, n: Notification, counts: WindowCounts, now: datetime, event: str, sent: Sequence[str],
        failed: Sequence[str],
    ) -> None:  # fmt: skip
        """Append to the history; a failure is logged, never fatal: the notice went out, and the state must
        still be saved or the next run would send it again."""
        if self.dry_run:
            return
        try:
            e = Event(now, n.rule, n.key, event, n.status, n.severity, n.count, n.threshold, n.escalation,
                      frozenset(sent), frozenset(failed), counts.start, counts.end,
                      logs_path(rule, n.key, counts.start, counts.end))  # fmt: skip
            self.history.record(e)
        except Exception as exc:  # Unauthorized (a role without the grant), timeouts
            if not self._history_failed:
                log.error(
                    "could not write the alert history (alert_events): %s; apply cql/ (`iact-schema apply`) and give "
                    "the alerter its grants (`iact-schema auth roles --alerter`, i.e. the cassandra_cluster role)",
                    exc,
                )
            self._history_failed = True
