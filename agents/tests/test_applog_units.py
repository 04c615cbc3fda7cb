import json
import logging
import threading

import pytest

from iact.applog import CassandraHandler, JsonFormatter, RequestContextFilter
from iact.applog.context import session_hash
from iact.applog.rows import MAX_MESSAGE_CHARS, build_row, clean_text, row_from_json, row_to_json
from iact.cassandra.settings import SettingsError
from iact.sink.spool import Spool


def make_record(msg="hello %s", args=("world",), **extra):
    record = logging.LogRecord("app.views", logging.ERROR, "/x/views.py", 12, msg, args, None, func="index")
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_row_carries_context_and_extras():
    record = make_record(request_id="r-1", user_id="42", session_id="s", order=7)
    row = build_row(record, record.getMessage(), None, "shop", "web1", 1)
    assert (row["host"], row["app"], row["level"], row["logger"]) == ("web1", "shop", "ERROR", "app.views")
    assert (row["request_id"], row["user_id"], row["session_id"]) == ("r-1", "42", "s")
    assert row["message"] == "hello world" and row["extra"] == {"order": "7"}
    assert row["hour"] == row["ts"].hour and row["day"] == row["ts"].date()


def test_row_id_is_deterministic_per_record_and_sequence():
    record = make_record()
    a = build_row(record, "m", None, "a", "h", 1)
    assert a["log_id"] == build_row(record, "m", None, "a", "h", 1)["log_id"]
    assert a["log_id"] != build_row(record, "m", None, "a", "h", 2)["log_id"]


def test_clean_text_replaces_invalid_utf8_and_marks_truncation():
    assert clean_text("bad \udcff end", 100) == "bad ? end"
    cut = clean_text("x" * (MAX_MESSAGE_CHARS + 10), MAX_MESSAGE_CHARS)
    assert cut.endswith("…[truncated 10 chars]") and cut.startswith("x" * MAX_MESSAGE_CHARS)


def test_unprintable_extra_is_stored_as_a_marker():
    class Evil:
        def __str__(self):
            raise ValueError("no")

    row = build_row(make_record(thing=Evil()), "m", None, "a", "h", 1)
    assert row["extra"]["thing"] == "<unprintable Evil>"


def test_spool_round_trip_and_bound(tmp_path):
    spool = Spool(tmp_path / "s.spool", max_bytes=2000, encode=row_to_json, decode=row_from_json)
    rows = [build_row(make_record(), f"m{i}", None, "a", "h", i) for i in range(50)]
    kept = spool.append(rows)
    assert 0 < kept < 50, "the bound must stop the spool from growing"
    replayed = []
    for chunk, end in spool.chunks(3):
        replayed.extend(chunk)
        spool.ack(end)
    assert [r["message"] for r in replayed] == [f"m{i}" for i in range(kept)]
    assert replayed[0]["log_id"] == rows[0]["log_id"]
    assert spool.pending_bytes() == 0 and list(spool.chunks(10)) == []


def test_spool_resumes_after_partial_replay(tmp_path):
    spool = Spool(tmp_path / "s.spool", max_bytes=10**6)
    spool.append([{"n": i} for i in range(10)])
    _chunk, end = next(spool.chunks(4))
    spool.ack(end)
    spool.close()
    again = Spool(tmp_path / "s.spool", max_bytes=10**6)
    assert [r["n"] for rows, _ in again.chunks(100) for r in rows] == list(range(4, 10))


def test_json_formatter_has_the_same_fields():
    line = JsonFormatter(app="shop", host="web1").format(make_record(request_id="r-9"))
    data = json.loads(line)
    assert data["app"] == "shop" and data["request_id"] == "r-9" and data["message"] == "hello world"


def test_context_filter_defaults_to_none():
    record = make_record()
    assert RequestContextFilter().filter(record)
    assert record.request_id is None and record.user_id is None


def test_session_ids_are_keyed_hashes_that_correlate_without_revealing_the_key():
    """Non-Django users get a per-process key; under Django the key derives from SECRET_KEY."""
    key = "k3ysessionvalue0123456789abcdefg"
    plain = session_hash(key)
    assert plain is not None and len(plain) == 16 and key not in plain and plain == session_hash(key)
    keyed = session_hash(key, "secret-a")
    assert keyed == session_hash(key, "secret-a") != session_hash(key, "secret-b")
    assert keyed != session_hash(key[:-1] + "h", "secret-a")
    assert session_hash(None, "secret-a") is None and session_hash("", "secret-a") is None


def test_bad_settings_fail_at_construction():
    with pytest.raises(SettingsError, match="queue_maxsize"):
        CassandraHandler(hosts="127.0.0.1", queue_maxsize=0)
    with pytest.raises(SettingsError, match="contact points"):
        CassandraHandler(hosts="")


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path, capsys):
    handler = CassandraHandler(hosts="127.0.0.1", port=1, queue_maxsize=5, batch_size=1, spool_path=str(tmp_path / "s"))
    release = threading.Event()
    handler._start_writer()
    handler._writer.durable.sink.write = lambda rows, reject=None: release.wait(30) and len(rows)
    logger = logging.getLogger("test.overflow")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(100):
            logger.error("record %d", i)
        stats = handler.get_stats()
        assert stats["logs_dropped"] >= 100 - 5 - 2
        assert stats["logs_queued"] + stats["logs_dropped"] == 100
        release.set()
        assert handler.flush(10)
        # Reported once the write in progress ends, when the writer knows why the queue filled.
        err = capsys.readouterr().err
        assert f"dropped {stats['logs_dropped']} record(s) since the last report" in err
        assert "queue_maxsize 5): the app logs faster than Cassandra takes records" in err
    finally:
        release.set()
        logger.removeHandler(handler)
        handler.close()


def test_readme_django_logging_snippet_configures_as_written(tmp_path, monkeypatch):
    import logging.config
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Ship your app's logs", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace("/var/log/iact/app.json.log", str(tmp_path / "app.json.log"))
    monkeypatch.setenv("IACT_CASSANDRA_PASSWORD", "from-the-environment")  # as the README says
    namespace: dict = {}
    exec(code, namespace)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(namespace["LOGGING"])
        kinds = {type(h).__name__ for h in root.handlers}
        assert kinds == {"CassandraHandler", "RotatingFileHandler"}
        assert "iact.applog.RequestContextMiddleware" in namespace["MIDDLEWARE"]
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
            h.close()
        root.handlers[:], root.level = saved
