"""`iact-collector`: run the agent, show its status, check a configuration file."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import logging.handlers
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from iact import __version__
from iact.collector import config as config_mod
from iact.collector.config import CollectorConfig, ConfigError
from iact.collector.pipeline import Collector
from iact.collector.runs import Runs
from iact.collector.sdnotify import Notifier
from iact.collector.status import problems, read_status, render, write_status

DEFAULT_CONFIG = "/etc/iact/collector.yaml"
log = logging.getLogger("iact.collector")


def _setup_logging(conf: CollectorConfig) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    # WatchedFileHandler reopens the file after logrotate moves it.
    handler: logging.Handler = (
        logging.handlers.WatchedFileHandler(conf.log_file) if conf.log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(conf.log_level)
    # The driver's reconnect chatter (with tracebacks): the sink says what failed, with advice, itself.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)


class Agent:
    """The main thread: signals, systemd notifications, status file, counter log, reloads."""

    def __init__(self, path: str, conf: CollectorConfig) -> None:
        self.path, self.conf = path, conf
        self.notifier = Notifier()
        # Plain flags, not threading.Event: a signal handler runs in the main thread, possibly while
        # that thread holds the Event's internal lock inside wait(), and set() would then deadlock
        # the agent for good (it stopped answering SIGTERM in the fault harness, once in ~1,000 runs).
        self.stopping = False
        self.reload = False
        self._next_io_error_log = 0.0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload = True
        else:
            self.stopping = True

    def run(self) -> int:
        """Until SIGTERM/SIGINT: exit 0 after a graceful stop, 1 if a stage died (systemd restarts us)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        faulthandler.register(signal.SIGUSR1)  # `kill -USR1` prints every thread's stack to the log
        runs = Runs(self.conf.runs_file)
        runs.start()
        collector = Collector(self.conf)
        collector.checkpoints.forget_closed(prune_paths=False)
        collector.start()
        log.info("iact-collector %s started for host %s", __version__, self.conf.host)
        self.notifier.send("READY=1", f"STATUS=collecting as {self.conf.host}")
        next_status = next_stats = next_dog = next_save = 0.0
        next_prune = time.monotonic() + 3600
        while not self.stopping:
            now = time.monotonic()
            if self.reload:
                self.reload = False
                collector = self._reload(collector)
            healthy = collector.healthy()
            if now >= next_save:
                self._guarded("saving checkpoints", collector.checkpoints.save)
                next_save = now + 1.0
            if now >= next_prune:
                self._guarded("pruning checkpoints", collector.checkpoints.forget_closed)
                next_prune = now + 3600
            if now >= next_status:
                collector.sample_lag()
                self._guarded("writing the status file", self._write_status, collector, runs)
                next_status = now + self.conf.status_interval
            if now >= next_stats:
                s = collector.status()
                log.info("counters %s spool_bytes=%s lag_bytes=%s", s["counters"], s["spool_bytes"], s["lag_bytes"])
                next_stats = now + self.conf.stats_interval
            if self.notifier.watchdog_interval and now >= next_dog and healthy:
                self.notifier.send("WATCHDOG=1")
                next_dog = now + self.notifier.watchdog_interval
            if not healthy:
                log.error("a pipeline stage died; exiting so systemd restarts the agent")
                collector.stop(self.conf.shutdown_timeout)
                return 1
            time.sleep(0.2)
        self.notifier.send("STOPPING=1")
        log.info("stopping: delivering what was read, then saving checkpoints")
        drained = collector.stop(self.conf.shutdown_timeout)
        self._guarded("writing the status file", self._write_status, collector, runs)
        runs.stopped_cleanly()
        log.info(
            "stopped (%s)", "all read lines delivered" if drained else "deadline hit; the rest is re-read next start"
        )
        return 0

    def _write_status(self, collector: Collector, runs: Runs) -> None:
        write_status(self.conf.status_file, {**collector.status(), "crash_restarts": runs.crash_restarts()})

    def _guarded(self, what: str, fn: Callable[..., object], *args: object) -> None:
        """State writes on a full disk must not stop delivery: log (once a minute) and retry next time."""
        try:
            fn(*args)
        except OSError as exc:
            if time.monotonic() >= self._next_io_error_log:
                log.error("%s failed (%s); free space under %s. Delivery goes on.", what, exc, self.conf.state_dir)
                self._next_io_error_log = time.monotonic() + 60

    def _reload(self, collector: Collector) -> Collector:
        try:
            new_conf = config_mod.load(self.path)
        except ConfigError as exc:
            log.error("SIGHUP: keeping the running configuration, the new one is invalid: %s", exc)
            return collector
        self.notifier.send("RELOADING=1")
        collector.stop(self.conf.shutdown_timeout)
        self.conf = new_conf
        _setup_logging(new_conf)
        fresh = Collector(new_conf)
        fresh.start()
        log.info("configuration reloaded from %s", self.path)
        self.notifier.send("READY=1")
        return fresh


def _cmd_run(args: argparse.Namespace) -> int:
    conf = config_mod.load(args.config)
    _setup_logging(conf)
    return Agent(args.config, conf).run()


def _cmd_check(args: argparse.Namespace) -> int:
    conf = config_mod.load(args.config)
    print(f"{args.config}: OK ({len(conf.files)} file sources, journal {'on' if conf.journal else 'off'})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    conf = config_mod.load(args.config)
    try:
        status = read_status(conf.status_file)
    except FileNotFoundError:
        print(f"no status at {conf.status_file}: the collector has not run yet", file=sys.stderr)
        return 3
    print(json.dumps(status, indent=1, sort_keys=True) if args.json else render(status))
    found = problems(
        status, max_age=args.max_age, max_lag_bytes=args.max_lag_bytes, stall_seconds=args.max_stall,
        restart_window=args.restart_window, stall_floor_bytes=args.stall_floor_bytes,
    )  # fmt: skip
    for p in found:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    parser = argparse.ArgumentParser(prog="iact-collector", description="Ship host logs to Cassandra.")
    parser.add_argument("--version", action="version", version=f"iact-collector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("run", "run the agent in the foreground (systemd runs this)"),
        ("check-config", "validate the configuration file and exit"),
        ("status", "offsets, lag, spool and counters of the running agent"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})")
        if name == "status":
            p.add_argument("--json", action="store_true", help="print the raw status document")
            p.add_argument("--max-age", type=float, default=30.0, help="fail if the status is older (seconds)")
            p.add_argument("--max-lag-bytes", type=int, help="fail if more unacknowledged bytes than this")
            p.add_argument(
                "--max-stall", type=float, default=300.0,
                help="fail if lag has not shrunk, or nothing was acknowledged while lines wait, for this long "
                "(seconds, default 300)",
            )  # fmt: skip
            p.add_argument(
                "--stall-floor-bytes", type=int, default=1 << 20,
                help="lag at or below this counts as caught up for --max-stall (default 1 MiB)",
            )  # fmt: skip
            p.add_argument(
                "--restart-window", type=float, default=600.0,
                help="fail if the agent restarted after a crash within this many seconds (default 600)",
            )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        return {"run": _cmd_run, "check-config": _cmd_check, "status": _cmd_status}[args.command](args)
    except ConfigError as exc:
        print(f"iact-collector: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
