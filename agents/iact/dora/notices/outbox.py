"""Delivery off the request thread: per channel, one bounded queue and one worker thread.

A request only puts a notice on the queues and never waits, so a slow or dead Slack cannot slow the
API; each channel having its own worker, it cannot hold back the e-mail either. A full queue drops
the notice with a logged reason instead of growing without bound. Sending is the alerter's
`deliver()`: the same retries, and errors that never hold the webhook URL or the relay password.

One outbox per process (each gunicorn worker has its own), built on the first notice, so a fork
never inherits a thread that does not exist in the child.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time

from django.conf import settings

from iact.alerting.notify import Channel, EmailChannel, LogChannel, Notification, SlackChannel, deliver
from iact.dora.notices.config import AlertsConfig

log = logging.getLogger("iact.dora.notices")
THREAD_PREFIX = "iact-dora-alerts"
# How long the process's exit waits for queued notices (gunicorn's worker shutdown is bounded too).
EXIT_WAIT_SECONDS = 5.0
_STOP = object()


def build_channels(config: AlertsConfig) -> list[Channel]:
    """The alerter's channel classes, from the dashboard's validated `alerts.channels`."""
    out: list[Channel] = []
    if config.slack:
        out.append(SlackChannel(config.slack.webhook_url, config.slack.timeout))
    if config.email:
        e = config.email
        out.append(EmailChannel(e.host, e.port, e.sender, list(e.to), e.username, e.password, e.security, e.ca_file))
    if config.log_path:
        out.append(LogChannel(config.log_path))
    return out


class ChannelWorker:
    """One channel's queue and the thread that empties it.

    The bound is counted under a lock rather than by queue.Queue(maxsize), so that the stop marker
    always fits: closing never waits on a full queue behind a hung channel.
    """

    def __init__(self, channel: Channel, attempts: int, backoff: float, size: int) -> None:
        self.channel = channel
        self.size = size
        self._attempts, self._backoff = attempts, backoff
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{THREAD_PREFIX}-{channel.name}", daemon=True)
        self._thread.start()

    def submit(self, notice: Notification) -> bool:
        """Queue without blocking; False (and logged why) when the notice is dropped."""
        with self._lock:
            if self._closed:
                reason = "the dashboard is shutting down"
            elif self._waiting >= self.size:
                reason = (
                    f"{self._waiting} notices already wait for it: the channel is slow or down (see its warnings "
                    "above); fix it, or raise alerts.queue_size (django_dora_alerts_queue_size)"
                )
            else:
                self._waiting += 1
                self._queue.put(notice)
                return True
        log.error("DORA alert %r dropped for %s: %s", notice.title(), self.channel.name, reason)
        return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            with self._lock:
                self._waiting -= 1
            if isinstance(item, Notification):
                self._send(item)

    def _send(self, notice: Notification) -> None:
        try:
            error = deliver(self.channel, notice, self._attempts, self._backoff)
        except Exception as exc:  # the worker must outlive any failure; the type only (a message may hold a URL)
            error = f"unexpected {type(exc).__name__}"
        if error:
            log.error(
                "DORA alert %r not sent through %s after %d attempt(s): %s",
                notice.title(), self.channel.name, self._attempts, error,
            )  # fmt: skip
        else:
            log.info("DORA alert %r sent through %s", notice.title(), self.channel.name)

    def stop(self) -> None:
        """Refuse new notices; the worker sends what is queued, then ends."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)

    def join(self, deadline: float) -> bool:
        """Wait for the worker until `deadline` (time.monotonic()); False, and logged, when it is still busy."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.error(
                "DORA alerts: %s is still sending at shutdown; %d queued notice(s) will not be sent",
                self.channel.name, self._waiting,
            )  # fmt: skip
            return False
        return True


class Outbox:
    """The workers of one configuration in one process."""

    def __init__(self, config: AlertsConfig) -> None:
        self.config = config
        self.pid = os.getpid()
        self.workers = [
            ChannelWorker(c, config.attempts, config.backoff, config.queue_size) for c in build_channels(config)
        ]

    def submit(self, notice: Notification) -> None:
        """Hand the notice to every channel; returns at once."""
        for worker in self.workers:
            worker.submit(notice)

    def stop(self) -> None:
        """Every worker finishes its queue and ends; nothing waits here."""
        for worker in self.workers:
            worker.stop()

    def close(self, timeout: float) -> bool:
        """Stop, then wait for all workers together at most `timeout` seconds; True when all ended."""
        deadline = time.monotonic() + timeout
        self.stop()
        return all([worker.join(deadline) for worker in self.workers])


_lock = threading.Lock()
_current: Outbox | None = None


def _outbox() -> Outbox | None:
    global _current
    config: AlertsConfig = settings.DORA_ALERTS
    if not config.enabled:
        return None
    with _lock:
        stale = _current
        if stale is not None and stale.config is config and stale.pid == os.getpid():
            return stale
        _current = Outbox(config)
    if stale is not None and stale.pid == os.getpid():
        stale.stop()  # another configuration (a test's override): let it finish on its own
    return _current


def submit(notice: Notification) -> None:
    """Queue the notice for every configured channel: never blocks, never raises (it runs after the commit)."""
    try:
        box = _outbox()
        if box is not None:
            box.submit(notice)
    except Exception:  # a notice is never worth a failed request
        log.exception("DORA alert %r not queued", notice.title())


def shutdown(timeout: float = EXIT_WAIT_SECONDS) -> bool:
    """Send what is queued (at most `timeout` seconds) and end this process's workers; the next notice starts anew."""
    global _current
    with _lock:
        box, _current = _current, None
    if box is None or box.pid != os.getpid():
        return True
    return box.close(timeout)


atexit.register(shutdown)
