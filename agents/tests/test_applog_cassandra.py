"""The handler against a real Cassandra node (the session fixture starts it from the tarball)."""

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from iact.applog import CassandraHandler

pytestmark = pytest.mark.cassandra


def rows_of(session, host, since):
    """All rows of a host from `since` to now, partition by partition (no ALLOW FILTERING)."""
    out = []
    hour = since.replace(minute=0, second=0, microsecond=0)
    now = datetime.now(UTC)
    while hour <= now:
        out.extend(
            session.execute(
                "SELECT * FROM logging.application_logs WHERE host = %s AND day = %s AND hour = %s",
                (host, hour.date(), hour.hour),
            )
        )
        hour += timedelta(hours=1)
    return out


@pytest.fixture
def shipped(cassandra_node, tmp_path):
    """A logger with a CassandraHandler writing as a unique host; closed after the test."""
    made = []

    def make(**overrides):
        host = f"test-{uuid.uuid4().hex[:8]}"
        settings = dict(
            hosts="127.0.0.1",
            port=cassandra_node.port,
            host=host,
            app="tests",
            consistency="ONE",
            spool_path=str(tmp_path / "spool"),
            close_timeout=60,
        )
        settings.update(overrides)
        handler = CassandraHandler(**settings)
        logger = logging.getLogger(f"iact.test.{host}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        made.append((logger, handler))
        return logger, handler, host

    yield make
    for logger, handler in made:
        logger.removeHandler(handler)
        handler.close()


def test_record_arrives_with_every_field(shipped, session):
    since = datetime.now(UTC)
    logger, handler, host = shipped()
    try:
        raise ZeroDivisionError("division by zero in checkout")
    except ZeroDivisionError:
        logger.exception(
            "payment failed for %s",
            "order-1",
            extra={"request_id": "req-7", "user_id": "u-1", "session_id": "sess-1", "cart": {"n": 2}},
        )
    assert handler.flush(30)
    [row] = rows_of(session, host, since)
    assert row.message == "payment failed for order-1"
    assert (row.level, row.levelno, row.app, row.logger) == ("ERROR", 40, "tests", logger.name)
    assert (row.request_id, row.user_id, row.session_id) == ("req-7", "u-1", "sess-1")
    assert "ZeroDivisionError: division by zero in checkout" in row.exception
    assert row.extra == {"cart": "{'n': 2}"}
    assert row.func == "test_record_arrives_with_every_field" and row.lineno > 0
    ttl = session.execute(
        "SELECT TTL(message) FROM logging.application_logs WHERE host=%s AND day=%s AND hour=%s",
        (host, row.day, row.hour),
    ).one()[0]
    assert 0 < ttl <= 90 * 86400


def test_ten_thousand_records_from_eight_threads_arrive_exactly_once(shipped, session):
    since = datetime.now(UTC)
    logger, handler, host = shipped()

    def work(t):
        for i in range(1250):
            logger.info("thread %d record %d", t, i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handler.flush(120)
    messages = [r.message for r in rows_of(session, host, since)]
    assert len(messages) == 10_000 and len(set(messages)) == 10_000
    assert handler.get_stats()["logs_written"] == 10_000 and handler.get_stats()["logs_dropped"] == 0


def test_cassandra_down_mid_stream_loses_and_duplicates_nothing(shipped, session, cassandra_node, cassandra_settings):
    since = datetime.now(UTC)
    logger, handler, host = shipped(batch_size=50, flush_interval=0.2)
    for i in range(1000):
        logger.warning("before %d", i)
    assert handler.flush(60)
    cassandra_node.stop()
    for i in range(1000):
        logger.warning("during %d", i)
    assert handler.flush(60)
    assert handler.get_stats()["logs_spooled"] > 0, "records written while Cassandra is down must be spooled"
    cassandra_node.start()
    for i in range(1000):
        logger.warning("after %d", i)
    assert handler.flush(120)
    from iact.cassandra.session import open_session

    # flush() promises written *or spooled*: a node just back may time out a replay chunk, and the
    # rest of the spool follows after the writer's backoff (CI run of stop 28 read 1,500 rows here
    # right after flush). So wait for every line, then check that none came twice.
    expected = {f"{phase} {i}" for phase in ("before", "during", "after") for i in range(1000)}
    messages: list[str] = []
    with open_session(cassandra_settings) as fresh:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            messages = [r.message for r in rows_of(fresh, host, since)]
            if len(messages) >= 3000:
                break
            time.sleep(0.5)
    assert len(messages) == 3000 and set(messages) == expected, (
        f"{len(messages)} rows, {len(set(messages))} distinct; stats {handler.get_stats()}"
    )
    assert handler.get_stats()["logs_dropped"] == 0


def test_close_drains_within_its_deadline(shipped, session):
    since = datetime.now(UTC)
    logger, handler, host = shipped(flush_interval=10, batch_size=1000)
    for i in range(500):
        logger.info("drain %d", i)
    handler.close()
    assert len(rows_of(session, host, since)) == 500


def test_odd_input_is_stored_safely(shipped, session):
    since = datetime.now(UTC)
    logger, handler, host = shipped()

    class Unprintable:
        def __str__(self):
            raise RuntimeError("cannot print")

    logger.info("surrogate \udcff here")
    logger.info(b"raw \xff\xfe bytes")
    logger.info("x" * 1_000_000)
    logger.info("odd extra", extra={"obj": Unprintable(), "blob": b"\x00\xff"})
    assert handler.flush(60)
    rows = {r.message[:20]: r for r in rows_of(session, host, since)}
    assert "surrogate ? here" in rows
    assert any(m.startswith("raw") and "\ufffd" in m for m in rows)
    huge = next(r for m, r in rows.items() if m.startswith("xxxx"))
    assert huge.message.endswith("…[truncated 934464 chars]")
    assert rows["odd extra"].extra["obj"] == "<unprintable Unprintable>"
    assert handler.get_stats()["write_errors"] == 0
