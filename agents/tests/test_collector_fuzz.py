"""Parser fuzzing: whatever bytes a host writes, parsing never raises and the row always binds.

Binding is checked by the driver against the real table (a prepared insert on a real node,
bound locally: every value serialized with its column's CQL type), so "binds" means what the
sink will send, not what a hand-written type table says.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iact.collector.parse import parse_line
from iact.collector.rows import COLUMNS, RowBuilder
from iact.collector.sources.records import RawJournal, RawLine

pytestmark = pytest.mark.cassandra

DIGITS = st.sampled_from(["0", "7", "42", "9999999999", "99999999999", "²", "٣٤", "\uff11\uff12", "-1", ""])
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
MONTHS = st.sampled_from(["Jan", "Feb", "Nov", "Dec", "Foo", "jan"])
ZONES = st.sampled_from(["UTC", "Asia/Tokyo", "Australia/Sydney", "America/New_York", "Nowhere/Else", None])


@pytest.fixture(scope="module")
def insert(cassandra_settings):
    from iact.cassandra.session import open_session

    with open_session(cassandra_settings) as session:
        yield session.prepare(
            f"INSERT INTO logging.infrastructure_logs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
        )


def binds(insert, row: dict) -> None:
    insert.bind([row.get(c) for c in COLUMNS])


@st.composite
def syslogish(draw) -> bytes:
    pri = draw(st.sampled_from(["", "<13>", "<191>", "<999>", "<²>", "<"]))
    day = draw(st.sampled_from([" 1", "31", "29", "0", "99"]))
    clock = draw(st.sampled_from(["00:00:00", "23:59:60", "25:61:61", "1:2:3"]))
    stamp = f"{draw(MONTHS)} {day} {clock}"
    if draw(st.booleans()):
        stamp = draw(
            st.sampled_from(["2026-11-28T10:00:00+09:00", "2026-13-40T99:99:99Z", "0001-01-01T00:00:00-23:59"])
        )
    tag = f"{draw(st.sampled_from(['app', 'kernel', 'x', '']))}[{draw(DIGITS)}]:"
    text = f"{pri}{stamp} {draw(st.sampled_from(['host', '-', 'h' * 300]))} {tag} {draw(TEXT)}"
    return text.encode("utf-8", "surrogatepass") + draw(st.binary(max_size=8))


@st.composite
def rfc5424ish(draw) -> bytes:
    sd = draw(st.sampled_from(["-", '[ex@1 a="b"]', '[x a="\\"]"]', "[broken", '[a b="c"][d e="f"]']))
    ts = draw(st.sampled_from(["-", "2026-11-28T10:00:00.123456Z", "2026-11-28T10:00:00+25:00", "bad"]))
    parts = [f"<{draw(st.integers(0, 999))}>1", ts, draw(st.sampled_from(["h", "-"])), "app", draw(DIGITS) or "-",
             draw(st.sampled_from(["ID1", "-"])), sd, draw(TEXT)]  # fmt: skip
    return " ".join(parts).encode("utf-8", "surrogatepass")


@st.composite
def kernelish(draw) -> bytes:
    pri = draw(st.sampled_from(["", "<3>", "<x>", "<99999>"]))
    return f"{pri}[{draw(st.sampled_from(['   12.345678', '1e9', '', 'x']))}] {draw(TEXT)}".encode(
        "utf-8", "surrogatepass"
    )


def _row(data: bytes, tz: str | None, fallback: str | None = None) -> dict:
    item = RawLine("syslog", "k", 0, len(data) + 1, data, 0, "auto", fallback, "h", tz, fallback is not None)
    return RowBuilder("h").build(item)[0]


@given(data=st.binary(max_size=3000), tz=ZONES)
def test_arbitrary_bytes_never_raise_and_always_bind(insert, data, tz):
    binds(insert, _row(data, tz))


@given(
    data=st.one_of(syslogish(), rfc5424ish(), kernelish()),
    tz=ZONES,
    prev=st.sampled_from([None, "2026-12-31T23:00:00+00:00"]),
)
def test_near_valid_lines_never_raise_and_always_bind(insert, data, tz, prev):
    binds(insert, _row(data, tz, prev))


@given(data=st.one_of(syslogish(), rfc5424ish(), kernelish(), st.text()))
def test_parse_line_never_raises(data):
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    parse_line(text)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)
FIELDS = st.sampled_from(["MESSAGE", "PRIORITY", "_PID", "SYSLOG_PID", "__REALTIME_TIMESTAMP", "__CURSOR",
                          "_SYSTEMD_UNIT", "SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "_HOSTNAME", "_COMM"])  # fmt: skip


@given(entry=st.dictionaries(FIELDS, JSONISH, max_size=8), raw=st.binary(max_size=200))
def test_journal_entries_never_raise_and_always_bind(insert, entry, raw):
    for data in (json.dumps(entry).encode(), raw):
        binds(insert, RowBuilder("h").build(RawJournal(data, 0))[0])
