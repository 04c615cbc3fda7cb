"""The log console (/logs/) against a real Cassandra node: every filter combination pages through
exactly the matching rows, newest first, with no gap and no repeat; its volume chart counts exactly
those rows per bucket and level, or says where its limit stopped it; tokens are signed and bound to
their search; the pages need the view_logs permission.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iact.cassandra.session import open_session
from iact.dora import conf
from iact.dora.logs import search as search_module
from iact.dora.logs import tokens
from iact.dora.logs import volume as volume_module
from iact.dora.logs.connection import set_search
from iact.dora.logs.search import LogSearch, Query, iter_pages

pytestmark = pytest.mark.cassandra

HOSTS = ("lc-web1", "lc-web2", "lc-db1")
LEVELS = ("INFO", "INFO", "INFO", "WARNING", "ERROR")
LOGGERS = ("shop.cart", "shop.pay", "django.request")


@pytest.fixture(scope="module")
def logs(cassandra_settings):
    """900 application rows over three hours of a day no other test writes, plus a few infrastructure rows."""
    # A day of its own: the cross-host search reads whole days, and a node kept between runs must not
    # mix in an earlier run's rows (the alerting tests' slots restart at their first day every run).
    start = datetime(2031, 1, 1, 9, tzinfo=UTC) + timedelta(days=random.SystemRandom().randrange(3000))
    # Request ids are searched without a day: unique to this fixture (pytest-django reorders tests, so
    # a module fixture may be set up more than once in a session).
    run = uuid.uuid4().hex[:8]
    with open_session(cassandra_settings) as session:
        app = session.prepare(
            "INSERT INTO logging.application_logs (host, day, hour, ts, log_id, app, level, logger, message, "
            "request_id, exception) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        infra = session.prepare(
            "INSERT INTO logging.infrastructure_logs (host, day, hour, ts, line_id, source, severity, program, unit, "
            "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rows = []
        for n in range(900):
            host = HOSTS[n % 3]
            ts = start + timedelta(seconds=12 * n, milliseconds=n % 7)  # three hours, every timestamp distinct
            row = {"host": host, "ts": ts, "id": str(uuid.uuid4()), "app": ("shop", "api")[n % 2],
                   "level": LEVELS[n % 5], "logger": LOGGERS[n % 3],
                   "message": f"order {n} {'payment declined' if n % 11 == 0 else 'ok'}",
                   "request_id": f"{run}-req-{n // 3}",
                   "exception": "Traceback: boom" if n % 50 == 0 else None}  # fmt: skip
            session.execute(app, (host, ts.date(), ts.hour, ts, uuid.UUID(row["id"]), row["app"], row["level"],
                                  row["logger"], row["message"], row["request_id"], row["exception"]))  # fmt: skip
            rows.append(row)
        infra_rows = []
        for n in range(60):
            ts = start + timedelta(minutes=3 * n, seconds=1)
            row = {"host": HOSTS[n % 3], "ts": ts, "id": str(uuid.uuid4()), "source": ("syslog", "auth")[n % 2],
                   "severity": ("info", "err")[n % 4 == 0], "program": ("sshd", "cron", "kernel")[n % 3],
                   "unit": ("ssh.service", "cron.service")[n % 2], "message": f"line {n}"}  # fmt: skip
            session.execute(infra, (row["host"], ts.date(), ts.hour, ts, uuid.UUID(row["id"]), row["source"],
                                    row["severity"], row["program"], row["unit"], row["message"]))  # fmt: skip
            infra_rows.append(row)
        yield {"session": session, "run": run, "start": start, "end": start + timedelta(hours=3), "application": rows,
               "infrastructure": infra_rows}  # fmt: skip


def matching(rows, query: Query) -> list[dict]:
    """The inserted rows the query selects."""
    return [
        r for r in rows
        if query.start <= r["ts"] < query.end and (not query.host or r["host"] == query.host)
        and all(str(r.get(c)) == v for c, v in query.filters)
        and (not query.text or query.text.lower() in r["message"].lower())
    ]  # fmt: skip


def expected(rows, query: Query) -> list[str]:
    """Ids of the rows the query must show, newest first (timestamps are distinct)."""
    return [r["id"] for r in sorted(matching(rows, query), key=lambda r: r["ts"], reverse=True)]


def expected_volume(rows, query: Query) -> tuple[timedelta, list[datetime], Counter]:
    """Bucket width, bucket starts and {(level or severity, bucket start): rows}, counted here from the inserts."""
    per_minute = query.end - query.start <= timedelta(hours=6)
    width = timedelta(minutes=1) if per_minute else timedelta(hours=1)

    def bucket(at: datetime) -> datetime:
        return at.replace(second=0, microsecond=0) if per_minute else at.replace(minute=0, second=0, microsecond=0)

    starts = [bucket(query.start)]
    while starts[-1] + width < query.end:
        starts.append(starts[-1] + width)
    split = "level" if query.table == "application" else "severity"
    return width, starts, Counter((r[split], bucket(r["ts"])) for r in matching(rows, query))


@st.composite
def queries(draw, start, end, run):
    table = draw(st.sampled_from(("application", "application", "infrastructure")))
    lo = start + timedelta(minutes=draw(st.integers(-30, 150)))
    hi = lo + timedelta(minutes=draw(st.integers(1, 240)))
    choices = {
        "application": {"app": ("shop", "api"), "level": ("INFO", "ERROR", "WARNING"), "logger": LOGGERS,
                        "request_id": (f"{run}-req-5", f"{run}-req-77", f"{run}-req-999")},
        "infrastructure": {"source": ("syslog", "auth"), "severity": ("info", "err"), "program": ("sshd", "kernel"),
                           "unit": ("ssh.service", "cron.service")},
    }[table]  # fmt: skip
    filters = tuple(sorted((c, draw(st.sampled_from(v))) for c, v in choices.items() if draw(st.integers(0, 3)) == 0))
    host = draw(st.sampled_from(("", "", *HOSTS)))
    text = draw(st.sampled_from(("", "", "", "DECLINED", "line 1")))
    return Query(table, lo, hi, host=host, filters=filters, text=text)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), scan_limit=st.sampled_from((20_000, 150)), slice_rows=st.sampled_from((2000, 40)),
       trace_limit=st.sampled_from((2000, 2)))  # fmt: skip
def test_every_filter_combination_pages_through_exactly_its_rows_newest_first(
    logs, data, scan_limit, slice_rows, trace_limit
):
    query = data.draw(queries(logs["start"], logs["end"], logs["run"]))
    event(f"{query.plan}{', a request' if query.request_id else ''}")
    search = LogSearch(logs["session"], "logging", scan_limit=scan_limit)
    seen = []
    old = search_module.SLICE_ROWS, search_module.TRACE_LIMIT
    search_module.SLICE_ROWS = slice_rows  # small slices make the cross-host plan split and resume often
    search_module.TRACE_LIMIT = trace_limit  # 2: a request's 3 rows are too many for its own plan
    try:
        for page in iter_pages(search, query):
            assert len(page.rows) <= search_module.PAGE_SIZE
            assert page.cursor is None or page.rows or page.scan_limited, "an empty page only when the scan stopped it"
            seen += [r["id"] for r in page.rows]
            assert len(seen) < 2000, "paging does not end"
    finally:
        search_module.SLICE_ROWS, search_module.TRACE_LIMIT = old
    assert seen == expected(logs[query.table], query), query
    assert not any("ALLOW FILTERING" in cql for cql in search._prepared), "every query names partitions or an index"


@st.composite
def volume_queries(draw, start, end, run):
    """The search's queries, half of them stretched past six hours (counted per hour, across midnight)."""
    query = draw(queries(start, end, run))
    if draw(st.booleans()):
        query = dataclasses.replace(query, end=query.start + timedelta(hours=draw(st.integers(6, 40)), minutes=1))
    return query


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), limit=st.sampled_from((100_000, 120, 37, 8)), slice_rows=st.sampled_from((5000, 40)),
       trace_limit=st.sampled_from((2000, 2)))  # fmt: skip
def test_volume_counts_each_bucket_and_level_exactly_or_says_where_its_limit_stopped(
    logs, data, limit, slice_rows, trace_limit
):
    query = data.draw(volume_queries(logs["start"], logs["end"], logs["run"]))
    search = LogSearch(logs["session"], "logging")
    old = volume_module.SLICE_ROWS, volume_module.TRACE_LIMIT
    volume_module.SLICE_ROWS = slice_rows  # small slices make the cross-host count halve and re-read
    volume_module.TRACE_LIMIT = trace_limit  # 2: a request's 3 rows are too many for its own plan
    try:
        counted = volume_module.count(search, query, limit)
    finally:
        volume_module.SLICE_ROWS, volume_module.TRACE_LIMIT = old
    event(f"{'host' if query.host else 'index'}, {'capped' if counted.capped else 'exact'}")
    width, starts, want = expected_volume(logs[query.table], query)
    assert counted.width == width and counted.starts == starts, query
    assert counted.scanned <= limit, "the count reads at most its limit"
    got = {(name, at): n for name, counts in counted.series() for at, n in zip(starts, counts, strict=True) if n}
    assert got == {k: n for k, n in want.items() if k[1] >= counted.counted_from}, query
    for _name, counts in counted.series():
        assert [n is None for n in counts] == [at < counted.counted_from for at in starts], "null = not counted"
    if counted.capped:
        assert counted.counted_from > starts[0]
    else:
        assert counted.counted_from == starts[0] and {k[0] for k in got} == {k[0] for k in want}
    if query.host:  # rows come in time order: the limit stops the count only when there are more rows than it
        readable = [r for r in logs[query.table] if r["host"] == query.host and query.start <= r["ts"] < query.end
                    and (not query.pushed or str(r.get(query.pushed[0])) == query.pushed[1])]  # fmt: skip
        assert counted.capped == (len(readable) > limit), query
    assert not any("ALLOW FILTERING" in cql for cql in search._prepared)


def test_a_request_id_lists_its_rows_across_hosts_in_time_order(logs):
    trace = LogSearch(logs["session"]).trace(f"{logs['run']}-req-10")
    assert [r["message"] for r in trace] == ["order 30 ok", "order 31 ok", "order 32 ok"]
    assert {r["host"] for r in trace} == set(HOSTS)


def test_a_row_opens_with_its_context_on_the_same_host(logs):
    target = logs["application"][450]
    search = LogSearch(logs["session"])
    found = search.row("application", target["host"], target["ts"], target["id"])
    assert found["message"] == target["message"] and found["request_id"] == target["request_id"]
    context = search.context("application", target["host"], target["ts"], around=3)
    same_host = sorted((r for r in logs["application"] if r["host"] == target["host"]), key=lambda r: r["ts"])
    i = [r["id"] for r in same_host].index(target["id"])
    assert [r["id"] for r in context] == [r["id"] for r in reversed(same_host[i - 3 : i + 4])]


# --- the pages ------------------------------------------------------------------------------------


@pytest.fixture
def console(logs, db):
    """A signed-in user with view_logs, and the console reading the test node."""
    user = User.objects.create_user("reader", password="correct horse battery")
    user.user_permissions.add(Permission.objects.get(codename="view_logs"))
    client = Client()
    client.force_login(user)
    set_search(LogSearch(logs["session"]))
    yield client
    set_search(None)


def window(logs, **extra):
    return {"from": logs["start"].isoformat(), "to": logs["end"].isoformat()} | extra


def test_without_view_logs_the_pages_answer_403(db):
    user = User.objects.create_user("plain", password="correct horse battery")
    client = Client()
    client.force_login(user)
    for url in (
        "/logs/",
        "/logs/trace/req-1/",
        "/logs/row/?table=application&host=x&ts=2026-01-01T00:00&id=x",
        "/logs/volume/",
    ):
        assert client.get(url).status_code == 403, url
    assert Client().get("/logs/").status_code == 302, "anonymous users are sent to the login page"


def test_the_page_lists_newest_first_and_its_next_link_goes_on_without_gap_or_repeat(logs, console):
    ids = []
    url = "/logs/?" + "&".join(f"{k}={v}" for k, v in window(logs, host="lc-web2", format="json").items())
    url = url.replace("+", "%2B")
    while url:
        body = console.get(url).json()
        ids += [r["id"] for r in body["rows"]]
        assert body["plan"] == "partitions"
        url = "/logs/" + body["next"] if body["next"] else ""
    query = Query("application", logs["start"], logs["end"], host="lc-web2")
    assert ids == expected(logs["application"], query)


def test_a_tampered_or_foreign_paging_token_is_refused(logs, console):
    params = window(logs, format="json")
    first = console.get("/logs/", params).json()
    token = parse_qs(urlparse(first["next"]).query)["page"][0]
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    answer = console.get("/logs/", params | {"page": tampered})
    assert answer.status_code == 400 and "altered" in answer.json()["error"]
    other = console.get("/logs/", params | {"level": "ERROR", "page": token})
    assert other.status_code == 400 and "another search" in other.json()["error"]
    with pytest.raises(tokens.BadToken):
        tokens.load(token, "0" * 16)


def test_html_page_row_and_trace_render(logs, console):
    page = console.get("/logs/", window(logs, level="ERROR", logger="shop.pay"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Fast: an indexed search" in html and 'id="next-page"' not in html
    target = next(r for r in logs["application"] if r["exception"])
    row = console.get("/logs/row/", {"table": "application", "host": target["host"], "ts": target["ts"].isoformat(),
                                     "id": target["id"]})  # fmt: skip
    assert row.status_code == 200 and "Traceback: boom" in row.content.decode()
    trace = console.get(f"/logs/trace/{target['request_id']}/")
    assert trace.status_code == 200 and target["message"] in trace.content.decode()


def test_listed_rows_link_to_their_row_and_request_and_show_utc(logs, console):
    with override_settings(TIME_ZONE="Asia/Kolkata"):  # +05:30: a local time would show
        html = console.get("/logs/", window(logs, host="lc-web1", level="ERROR")).content.decode()
    newest = max((r for r in logs["application"] if r["host"] == "lc-web1" and r["level"] == "ERROR"),
                 key=lambda r: r["ts"])  # fmt: skip
    first = html.split('<tr class="log-row">')[1]
    assert newest["ts"].strftime("%Y-%m-%d %H:%M:%S.%f")[:23] in first, "the time column is UTC"
    row_link = first.split('<a href="')[1].split('"')[0].replace("&amp;", "&")
    assert newest["message"] in console.get(row_link).content.decode()
    trace_link = first.split('class="trace" href="')[1].split('"')[0]
    assert trace_link == f"/logs/trace/{newest['request_id']}/"
    assert newest["message"] in console.get(trace_link).content.decode()


def test_bad_filters_answer_400_saying_what_to_fix(logs, console):
    assert "range=" in console.get("/logs/", {"range": "3y", "format": "json"}).json()["error"]
    too_long = console.get("/logs/", {"from": "2026-01-01T00:00", "to": "2026-02-01T00:00", "format": "json"})
    assert too_long.status_code == 400 and "7 days" in too_long.json()["error"]
    assert console.get("/logs/", {"table": "nope"}).status_code == 400


def test_without_an_account_the_console_says_what_to_set(logs, db):
    user = User.objects.create_superuser("root", password="correct horse battery")
    client = Client()
    client.force_login(user)
    set_search(None)
    with override_settings(IACT_LOGS=conf.LogsConfig(password="")):
        answer = client.get("/logs/", {"format": "json"})
    assert answer.status_code == 503 and "django_dora_logs_password" in answer.json()["error"]


def test_the_scan_limit_is_shown_and_the_next_page_goes_on(logs, console):
    set_search(LogSearch(logs["session"], scan_limit=100))
    body = console.get("/logs/", window(logs, q="declined", format="json")).json()
    assert body["plan"] == "scan" and body["scan_limited"] and body["scanned"] == 100
    assert body["next"], "the scan goes on on the next page"
    assert all("declined" in r["message"] for r in body["rows"])
    assert all(r["ts"].endswith("+00:00") for r in body["rows"]), "times in UTC"


def test_volume_endpoint_answers_the_same_search_per_bucket_and_level(logs, console):
    page = console.get("/logs/", window(logs, host="lc-web1", level="ERROR")).content.decode()
    data_url = page.split('id="log-volume" data-url="')[1].split('"')[0].replace("&amp;", "&")
    body = console.get(data_url).json()
    query = Query("application", logs["start"], logs["end"], host="lc-web1", filters=(("level", "ERROR"),))
    _, starts, want = expected_volume(logs["application"], query)
    assert body["bucket"] == "minute" and body["labels"] == [s.isoformat() for s in starts]
    assert [s["name"] for s in body["series"]] == ["ERROR"] and not body["capped"]
    assert body["series"][0]["counts"] == [want[("ERROR", s)] for s in starts], "zeros where empty"
    assert body["total"] == len(matching(logs["application"], query)) == 60 and body["plan"] == "partitions"

    wide = console.get("/logs/volume/", window(logs, to=(logs["end"] + timedelta(hours=20)).isoformat())).json()
    assert wide["bucket"] == "hour" and wide["total"] == 900
    assert [s["name"] for s in wide["series"]] == ["ERROR", "WARNING", "INFO"], "most severe first"
    infra = console.get("/logs/volume/", window(logs, table="infrastructure")).json()
    assert infra["split"] == "severity" and {s["name"] for s in infra["series"]} == {"err", "info"}
    assert console.get("/logs/volume/", {"range": "3y"}).status_code == 400


def test_volume_reports_a_capped_count_and_draws_no_guess(logs, console):
    set_search(LogSearch(logs["session"], scan_limit=20))  # the count may read 5 x 20 rows
    for extra in ({}, {"host": "lc-db1"}):
        body = console.get("/logs/volume/", window(logs, **extra)).json()
        assert body["capped"] and body["limit"] == 100 and body["scanned"] <= 100, extra
        assert body["note"].startswith("Partial: the count stopped at its limit of 100 rows read")
        counts = body["series"][0]["counts"]
        assert counts[0] is None and counts[-1] is not None, "the oldest buckets are not counted, the newest are"
        assert body["counted_from"] > body["from"]


# --- in Chromium ----------------------------------------------------------------------------------

from test_dora_browser import ARTIFACTS, PAINTED_PIXELS, browser, chart_js, wait  # noqa: E402,F401  (fixtures)


@pytest.mark.django_db(transaction=True)
def test_in_chromium_search_page_open_a_row_follow_its_request_and_tail(live_server, browser, chart_js, logs):  # noqa: F811
    from selenium.webdriver.common.by import By

    user = User.objects.create_user("carol", password="a good long password")
    user.user_permissions.add(Permission.objects.get(codename="view_logs"))
    set_search(LogSearch(logs["session"]))
    try:
        start, end = logs["start"].isoformat(), logs["end"].isoformat()
        browser.get(f"{live_server.url}/logs/?table=application&host=lc-web1&from={start}&to={end}".replace("+", "%2B"))
        browser.find_element(By.NAME, "username").send_keys("carol")
        browser.find_element(By.NAME, "password").send_keys("a good long password")
        browser.find_element(By.ID, "login-submit").click()
        wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#log-rows tr.log-row"))
        first_page = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#log-rows tr.log-row td:first-child")]
        assert len(first_page) == 100
        wait(browser, lambda b: b.find_element(By.ID, "log-volume").get_attribute("data-drawn"))
        chart = browser.find_element(By.ID, "log-volume")
        assert chart.get_attribute("data-drawn") == "true", browser.find_element(By.ID, "log-volume-note").text
        assert chart.get_attribute("data-total") == "300", "the volume of lc-web1's 300 rows in the window"
        assert browser.execute_script(PAINTED_PIXELS, "log-volume") > 2000, "the chart drew bars"
        assert "300 rows" in browser.find_element(By.ID, "log-volume-note").text
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "logs-volume.png"))
        browser.find_element(By.ID, "next-page").click()
        wait(browser, lambda b: "page=" in b.current_url)
        second_page = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#log-rows tr.log-row td:first-child")]
        assert second_page and not set(second_page) & set(first_page) and max(second_page) < min(first_page)

        browser.find_element(By.CSS_SELECTOR, "#log-rows tr.log-row td:first-child a").click()
        wait(browser, lambda b: b.find_elements(By.ID, "row-message"))
        assert browser.find_elements(By.CSS_SELECTOR, "#row-context tr.current")
        browser.find_element(By.CSS_SELECTOR, "#row-fields a").click()  # the request id
        wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#trace-rows tr.log-row"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#trace-rows tr.log-row")) == 3, "a request's three rows"

        host = f"lc-tail-{uuid.uuid4().hex[:6]}"
        browser.get(f"{live_server.url}/logs/?table=application&host={host}&range=15m")
        wait(browser, lambda b: b.find_elements(By.ID, "no-rows"))
        browser.find_element(By.ID, "tail-toggle").click()
        wait(browser, lambda b: "live" in b.find_element(By.ID, "tail-state").text)
        marker = f"tailed {uuid.uuid4()}"
        now = datetime.now(UTC)
        logs["session"].execute(
            "INSERT INTO logging.application_logs (host, day, hour, ts, log_id, app, level, logger, message) "
            "VALUES (%s, %s, %s, %s, %s, 'shop', 'INFO', 'shop.tail', %s)",
            (host, now.date(), now.hour, now, uuid.uuid4(), marker),
        )
        wait(browser, lambda b: marker in b.find_element(By.ID, "log-rows").text, timeout=5)
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "logs-console.png"))
        browser.find_element(By.ID, "tail-toggle").click()
        assert "paused" in browser.find_element(By.ID, "tail-state").text
    finally:
        set_search(None)
