"""The app the handler fault harness drives (applog_chaos.py): logs numbered records through
CassandraHandler and obeys one JSON command per stdin line, answering one JSON line on stdout.

Commands: burst (log n records), error (make the next sink write raise a non-SinkError, before
or after writing), fork (a child logs n records, closes logging and exits), flush (with a
timeout), exit (reap children, flush, close, report counters). Records are "<label>:<n>", label
P for this process and C<k> for the k-th child, so the harness knows exactly what was logged.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import select
import sys
import time
from pathlib import Path
from typing import Any

from iact.applog import CassandraHandler
from iact.sink.cassandra import CassandraSink

_armed: dict[str, str | None] = {"when": None}
_real_write = CassandraSink.write


def _chaos_write(self: CassandraSink, rows: Any, reject: Any = None) -> int:
    """CassandraSink.write with a one-shot injected failure that is not a SinkError."""
    when = _armed["when"]
    if when == "before":
        _armed["when"] = None
        raise RuntimeError("chaos: injected writer error before the write")
    written = _real_write(self, rows, reject)
    if when == "after":  # the rows are in Cassandra, but the writer is told otherwise: resent, same ids
        _armed["when"] = None
        raise RuntimeError("chaos: injected writer error after the write")
    return written


CassandraSink.write = _chaos_write  # type: ignore[method-assign]


def burst(logger: logging.Logger, label: str, start: int, n: int, rate: float | None) -> float:
    """Log n numbered records (at most `rate` a second); return the slowest call (emit must never block)."""
    slowest = 0.0
    began = time.perf_counter()
    for k, i in enumerate(range(start, start + n)):
        if rate and k % 50 == 0:
            time.sleep(max(0.0, began + k / rate - time.perf_counter()))
        t0 = time.perf_counter()
        logger.info("%s:%d", label, i)
        slowest = max(slowest, time.perf_counter() - t0)
    return slowest


def reap(children: dict[int, str], timeout: float) -> dict[str, Any]:
    """Wait for every child within timeout (pidfd, no polling); kill the ones that hang."""
    out: dict[str, Any] = {}
    end = time.monotonic() + timeout
    for pid, label in children.items():
        fd = os.pidfd_open(pid)
        try:
            if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
                os.kill(pid, 9)
                out[label] = "hung"
            _, status = os.waitpid(pid, 0)
            out.setdefault(label, os.waitstatus_to_exitcode(status))
        finally:
            os.close(fd)
    return out


def main() -> None:
    """Read commands until exit."""
    cfg = json.loads(sys.argv[1])
    workdir = Path(cfg.pop("workdir"))
    handler = CassandraHandler(**cfg)
    logger = logging.getLogger("chaos")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    label, logged, children = "P", 0, {}

    def reply(data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "burst":
            slowest = burst(logger, label, logged, cmd["n"], cmd.get("rate"))
            logged += cmd["n"]
            reply({"slowest_emit": slowest})
        elif op == "error":
            _armed["when"] = cmd["when"]
            reply({})
        elif op == "fork":
            child = f"C{len(children) + 1}"
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    slowest = burst(logger, child, 0, cmd["n"], cmd.get("rate"))
                    # If closing takes longer than it may (two close_timeouts), show where every thread is.
                    faulthandler.dump_traceback_later(2 * handler.config.close_timeout + 0.5)
                    logging.shutdown()  # what the interpreter does at exit: flush, then close
                    faulthandler.cancel_dump_traceback_later()
                    stats = handler.get_stats()
                    (workdir / f"{child}.json").write_text(
                        json.dumps({"logged": cmd["n"], "slowest_emit": slowest, "stats": stats})
                    )
                except BaseException as exc:
                    print(f"child {child}: {exc!r}", file=sys.stderr, flush=True)
                    code = 3
                os._exit(code)
            children[pid] = child
            reply({"pid": pid})
        elif op == "flush":
            t0 = time.monotonic()
            flushed = handler.flush(cmd["timeout"])
            reply({"flushed": flushed, "took": time.monotonic() - t0})
        elif op == "exit":
            exits = reap(children, cmd["children_timeout"])
            flushed = handler.flush(cmd["flush_timeout"])
            logging.shutdown()
            reply({"logged": logged, "flushed": flushed, "stats": handler.get_stats(), "children": exits})
            return
        else:
            raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
