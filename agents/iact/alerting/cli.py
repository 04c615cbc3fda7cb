"""`iact-alert`: evaluate the rules (cron or a timer runs `iact-alert run`), acknowledge, silence, status."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from iact.alerting import config as config_mod
from iact.alerting.config import AlertConfig
from iact.alerting.engine import Evaluator
from iact.alerting.history import Event, History
from iact.alerting.notify import Channel, EmailChannel, LogChannel, SlackChannel
from iact.alerting.query import ALL_KEYS, WindowQuery
from iact.alerting.rules import RuleError, parse_duration
from iact.alerting.state import NotFiring, StateStore
from iact.cassandra.session import CassandraUnavailable, open_session
from iact.yamlconfig import ConfigError

DEFAULT_CONFIG = "/etc/iact/alerting.yaml"
log = logging.getLogger("iact.alerting")


def channels(conf: AlertConfig) -> dict[str, Channel]:
    """The configured channels; unconfigured ones are skipped by the rules that name them."""
    out: dict[str, Channel] = {}
    if conf.slack:
        out["slack"] = SlackChannel(conf.slack.webhook_url, conf.slack.timeout)
    if conf.email:
        e = conf.email
        out["email"] = EmailChannel(e.host, e.port, e.sender, list(e.to), e.username, e.password, e.security, e.ca_file)
    if conf.log_path:
        out["log"] = LogChannel(conf.log_path)
    return out


@contextmanager
def _lease_kept(store: StateStore, owner: str, ttl: int) -> Iterator[None]:
    """Renew the lease every third of its TTL while the body runs.

    A run may outlast the TTL (a slow channel, a long catch-up): without renewal the lease would
    lapse under a live run and the next scheduled run would evaluate and notify alongside it. A
    holder that dies stops renewing, and the lease lapses one TTL later.
    """
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                holder = store.renew(owner, ttl)
            except Exception as exc:  # a missed renewal is retried; the run goes on
                log.warning("could not renew the evaluation lease: %s", exc)
                continue
            if holder:
                log.error("the evaluation lease was lost (now held by %s); another run may notify too", holder)
                return

    keeper = threading.Thread(target=renew, name="iact-alert-lease", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()


def _run(conf: AlertConfig, args: argparse.Namespace) -> int:
    owner = f"{conf.name}/{socket.gethostname()}/{os.getpid()}"
    started = time.perf_counter()
    with open_session(conf.connection) as session:
        store = StateStore(session, conf.keyspace, conf.name)
        if args.dry_run:
            report = Evaluator(conf, WindowQuery(session, conf.keyspace), store, channels(conf), True).run()
        else:
            holder = store.acquire(owner, ttl=conf.lease_ttl)
            if holder:
                log.warning("another evaluation holds the lease (%s); not evaluating twice", holder)
                return 0
            try:
                with _lease_kept(store, owner, conf.lease_ttl):
                    report = Evaluator(conf, WindowQuery(session, conf.keyspace), store, channels(conf)).run()
            finally:
                store.release(owner)
    took = time.perf_counter() - started
    log.info(
        "evaluated %d rules over %d window(s) in %.2f s: %d notification(s), %d silenced, %d channel failure(s)",
        len(conf.rules), len(report.windows), took, len(report.notifications), len(report.silenced),
        len(report.failures),
    )  # fmt: skip
    return 1 if report.failures else 0


def _silence(conf: AlertConfig, args: argparse.Namespace) -> int:
    if args.rule not in {r.name for r in conf.rules}:
        raise ConfigError(f"no rule named {args.rule!r}; rules: {', '.join(r.name for r in conf.rules)}")
    try:
        seconds = parse_duration(args.duration, "--for")
    except RuleError as exc:
        raise ConfigError(str(exc)) from exc
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    with open_session(conf.connection) as session:
        StateStore(session, conf.keyspace, conf.name).silence(
            args.rule, args.key, until, os.environ.get("USER", "unknown")
        )
    print(f"silenced {args.rule} [{args.key}] until {until:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def _ack(conf: AlertConfig, args: argparse.Namespace) -> int:
    if args.rule not in {r.name for r in conf.rules}:
        raise ConfigError(f"no rule named {args.rule!r}; rules: {', '.join(r.name for r in conf.rules)}")
    with open_session(conf.connection) as session:
        try:
            ack = StateStore(session, conf.keyspace, conf.name).ack(args.rule, args.key, args.by)
        except NotFiring as exc:
            print(f"iact-alert: {exc}", file=sys.stderr)
            return 1
    print(
        f"acknowledged {args.rule} [{args.key}] (firing since {ack.since:%Y-%m-%d %H:%M:%S} UTC) by {ack.acked_by}: "
        "no renotify or escalation until it resolves"
    )
    return 0


def _retire(conf: AlertConfig, args: argparse.Namespace) -> int:
    # A rule removed from the configuration can still have state (firing on /alerts/ for ever): retire it too.
    rule = next((r for r in conf.rules if r.name == args.rule), None)
    owner = f"retire@{socket.gethostname()}:{os.getpid()}"
    with open_session(conf.connection) as session:
        store = StateStore(session, conf.keyspace, conf.name)
        # Under the run's lease: a run that read the state before the delete would write it back.
        holder = store.acquire(owner, 60)
        if holder is not None:
            print(
                f"iact-alert: a run is in progress ({holder} holds the lease); try again in a minute", file=sys.stderr
            )
            return 1
        try:
            if not store.retire(args.rule, args.key):
                print(f"iact-alert: {args.rule} [{args.key}] has no state: nothing to retire", file=sys.stderr)
                return 1
            now = datetime.now(UTC)
            severity, threshold = (rule.severity, rule.threshold) if rule else ("", 0)
            event = Event(now, args.rule, args.key, "retired", "resolved", severity, 0, threshold,
                          window_start=now, window_end=now)  # fmt: skip
            History(session, conf.keyspace).record(event)
        finally:
            store.release(owner)
    print(f"retired {args.rule} [{args.key}]: its state is gone, no resolved notice is sent")
    if rule is not None and rule.kind == "flatline":
        print(
            f"note: it is expected again, and fires again, while it has rows in the last {rule.lookback} s before a "
            "window (the rule's lookback); acknowledge it until then"
        )
    return 0


def _unsilence(conf: AlertConfig, args: argparse.Namespace) -> int:
    with open_session(conf.connection) as session:
        StateStore(session, conf.keyspace, conf.name).unsilence(args.rule, args.key)
    print(f"unsilenced {args.rule} [{args.key}]")
    return 0


def _status(conf: AlertConfig, _args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    with open_session(conf.connection) as session:
        store = StateStore(session, conf.keyspace, conf.name)
        last_at, last_status = store.last_run()
        print(f"last run: {last_at or 'never'} ({last_status or '-'}), watermark {store.watermark() or '-'}")
        print(f"{'RULE':24} {'KIND':10} {'WINDOW':>7} {'THRESHOLD':>9}  FIRING KEYS")
        details = []
        for rule in conf.rules:
            firing = {k: s for k, s in store.states(rule.name).items() if s.firing}
            print(f"{rule.name:24} {rule.kind:10} {rule.window:>6}s {rule.threshold:>9}  {', '.join(firing) or '-'}")
            acks = store.acks(rule.name) if firing else {}
            for key, state in firing.items():
                ack = acks.get(key)
                who = (f"acknowledged by {ack.acked_by} at {ack.acked_at:%Y-%m-%d %H:%M:%S}"
                       if ack and ack.since == state.since else "not acknowledged")  # fmt: skip
                step = f", escalation step {state.step}/{len(rule.escalation)}" if rule.escalation else ""
                since = f"{state.since:%Y-%m-%d %H:%M:%S}" if state.since else "-"
                details.append(f"  {rule.name} [{key}] since {since} UTC, count {state.last_count}{step}, {who}")
        print("firing:" if details else "firing: none")
        for line in details:
            print(line)
        silences = store.silences(now)
        print("silences:" if silences else "silences: none")
        for s in silences:
            print(f"  {s.rule} [{s.key}] until {s.until:%Y-%m-%d %H:%M:%S} UTC (by {s.created_by})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point; exit 1 when a channel failed (cron mails it), 2 on bad configuration."""
    parser = argparse.ArgumentParser(prog="iact-alert", description="Log-rate alerts over Cassandra.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate every due window and notify")
    run.add_argument("--dry-run", action="store_true", help="print what would be sent; change nothing")
    sil = sub.add_parser("silence", help="hold a rule's notifications for a while")
    sil.add_argument("rule")
    sil.add_argument("--key", default=ALL_KEYS, help="one key of a grouped rule (default: every key)")
    sil.add_argument("--for", dest="duration", required=True, help="e.g. 30m, 2h, 1d")
    ack = sub.add_parser("ack", help="acknowledge a firing key: no renotify or escalation until it resolves")
    ack.add_argument("rule")
    ack.add_argument("key", nargs="?", default=ALL_KEYS, help="the firing key (default *: an ungrouped rule)")
    ack.add_argument("--by", default=os.environ.get("USER", "unknown"), help="who takes it (default: $USER)")
    ret = sub.add_parser("retire", help="forget a key for good (a host decommissioned): no resolved notice")
    ret.add_argument("rule")
    ret.add_argument("key")
    uns = sub.add_parser("unsilence", help="lift a silence")
    uns.add_argument("rule")
    uns.add_argument("--key", default=ALL_KEYS)
    sub.add_parser("status", help="last run, firing keys and their acknowledgements, silences")
    sub.add_parser("check-config", help="validate the configuration and rules")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.WARNING)  # it would log webhook URLs at DEBUG
    try:
        conf = config_mod.load(args.config)
        if args.command == "check-config":
            print(f"{args.config}: OK ({len(conf.rules)} rules)")
            return 0
        handler = {"run": _run, "ack": _ack, "silence": _silence, "unsilence": _unsilence, "status": _status,
                   "retire": _retire}  # fmt: skip
        return handler[args.command](conf, args)
    except ConfigError as exc:
        print(f"iact-alert: configuration error: {exc}", file=sys.stderr)
        return 2
    except CassandraUnavailable as exc:
        print(f"iact-alert: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
