"""`scripts/lab demo`: a day of realistic traffic in the lab, so that every page of the dashboard has rows.

After `scripts/lab up` (or a converged `full` scenario), through the appliance's own paths:

- DORA: a day of deployments of three services (commits, a failed one, a rollback) and an incident,
  posted to the ingest API (/api/dora/metrics) with the lab's CI token;
- application logs through CassandraHandler: the shop's request log for the last 24 hours (request
  ids, users, a slow query or two), and an error burst a few minutes ago;
- auth.log noise on every host (ssh logins, failed passwords, sudo, cron sessions) with the last
  day's stamps, appended for the collectors to tail and ship;

then runs the alerter once (the burst fires `errors`) and the dashboard's health job, and waits until
each page has its rows: / (DORA), /logs/ (application and infrastructure), /alerts/ and /health/.
It prints how long each took. Every run adds another day of the same shape (new ids).
"""

from __future__ import annotations

import json
import logging
import random
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "agents"), str(ROOT / "molecule" / "shared")]

from lab import ca_file, node_ip, secret, speaks_tls  # noqa: E402  (molecule/shared/lab.py: the lab's secrets and addresses)

NODES = ("cass1", "cass2", "cass3")
HOSTS = (*NODES, "app1")
SERVICES = ("shop-web", "checkout", "search")
PATHS = ("/", "/cart", "/checkout", "/search?q=boots", "/product/42", "/account", "/api/orders")
USERS = ("alice", "bob", "carol", "dave", "erin")


def dora_events(now: datetime, rng: random.Random, tag: str) -> list[dict]:
    """A day of deployments of each service every hour or two, with their commits; one fails, one is
    rolled back, and one causes an incident restored 40 minutes later."""
    events: list[dict] = []
    for s, service in enumerate(SERVICES):
        at = now - timedelta(hours=23, minutes=rng.randrange(60))
        n = 0
        while at < now - timedelta(minutes=20):
            n += 1
            eid = f"demo-{tag}-{service}-{n}"
            status = "success"
            if s == 1 and n == 3:
                status = "failed"
            elif s == 2 and n == 4:
                status = "rolled_back"
            commits = [
                {"sha": uuid.uuid4().hex[:12], "committed_at": (at - timedelta(hours=rng.uniform(0.5, 30))).isoformat()}
                for _ in range(rng.randint(1, 4))
            ]
            events.append({
                "type": "deployment", "id": eid, "service": service, "environment": "production",
                "version": f"2026.{n}", "sha": commits[0]["sha"], "started_at": (at - timedelta(minutes=6)).isoformat(),
                "finished_at": at.isoformat(), "status": status, "commits": commits,
                "url": f"https://ci.example.internal/{service}/runs/{n}",
            })  # fmt: skip
            if s == 0 and n == 5:
                opened = at + timedelta(minutes=12)
                events.append({
                    "type": "incident", "id": f"demo-{tag}-inc-1", "service": service, "deployment_id": eid,
                    "title": "Checkout answers 502 after the cart change", "opened_at": opened.isoformat(),
                    "restored_at": (opened + timedelta(minutes=40)).isoformat(),
                    "url": "https://status.example.internal/incidents/1",
                })  # fmt: skip
            at += timedelta(minutes=rng.randrange(50, 140))
    return events


def dora_api(path: str, events: list[dict] | None = None) -> dict:
    """The ingest API as CI uses it: the token, over HTTPS verified by the lab CA."""
    # The lab's dashboard serves a self-signed certificate (django_dora_tls_*): trusted as it is served now,
    # on the lab network, and only that one.
    address = node_ip("app1")
    context = ssl.create_default_context(cadata=ssl.get_server_certificate((address, 443)))
    context.check_hostname = False  # issued to the host's name, reached here by address
    request = urllib.request.Request(
        f"https://{address}{path}", data=None if events is None else json.dumps({"events": events}).encode(),
        method="GET" if events is None else "POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret('dora_ci_token')}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{path}: HTTP {exc.code}: {exc.read()[:2000].decode(errors='replace')}") from None


def cluster_ca() -> str | None:
    """The lab CA when the nodes speak TLS (always after `scripts/lab up`; the full scenario converges in
    plaintext and moves to TLS in its migration test), else None: the clients connect as configured."""
    return str(ca_file()) if ca_file().is_file() and speaks_tls(node_ip(NODES[0])) else None


def ship_app_logs(now: datetime, rng: random.Random, spool: str) -> int:
    """The shop's request log through CassandraHandler, with record times over the last day."""
    from iact.applog.handler import CassandraHandler

    handler = CassandraHandler(
        hosts=",".join(node_ip(n) for n in NODES), username="iact_writer", password=secret("cassandra_writer_password"),
        ca_file=cluster_ca(), app="shop", host="app1", spool_path=spool,
    )  # fmt: skip
    log = logging.getLogger("shop.demo")
    log.propagate = False
    sent = 0

    def emit(at: datetime, level: int, name: str, msg: str, request_id: str, user: str) -> None:
        nonlocal sent
        record = log.makeRecord(name, level, __file__, 0, msg, (), None,
                                extra={"request_id": request_id, "user_id": user})  # fmt: skip
        record.created, record.msecs = at.timestamp(), (at.timestamp() % 1) * 1000
        handler.handle(record)
        sent += 1

    at = now - timedelta(hours=24)
    while at < now - timedelta(minutes=10):
        request_id, user = uuid.uuid4().hex, rng.choice(USERS)
        path = rng.choice(PATHS)
        emit(at, logging.INFO, "shop.http", f"GET {path} 200", request_id, user)
        emit(at + timedelta(milliseconds=40), logging.DEBUG if rng.random() < 0.5 else logging.INFO, "shop.db",
             f"query orders took {rng.randrange(2, 90)} ms", request_id, user)  # fmt: skip
        if rng.random() < 0.03:
            emit(at + timedelta(milliseconds=900), logging.WARNING, "shop.db", "slow query: 1.8 s on orders_by_user",
                 request_id, user)  # fmt: skip
        if rng.random() < 0.01:
            emit(at + timedelta(milliseconds=950), logging.ERROR, "shop.payments", "card processor timed out",
                 request_id, user)  # fmt: skip
        at += timedelta(seconds=rng.uniform(20, 90))
    # An error burst: payments down for the last six minutes (the `errors` rule fires at the next run).
    start = now - timedelta(minutes=6)
    for i in range(60):
        emit(start + timedelta(seconds=6 * i), logging.ERROR, "shop.payments",
             "card processor refused the connection (503)", uuid.uuid4().hex, rng.choice(USERS))  # fmt: skip
    if not handler.flush(120):
        raise RuntimeError(f"the handler did not deliver its records: {handler.stats.last_error}")
    handler.close()
    return sent


def auth_lines(host: str, now: datetime, rng: random.Random, marker: str) -> str:
    """A day of auth.log on one host, oldest first, in its local time, ending with a line carrying the marker."""
    offset = podman("exec", host, "date", "+%z").strip()  # syslog stamps carry no zone: the host's own
    now = now.astimezone(datetime.strptime(offset, "%z").tzinfo)
    lines = []
    at = now - timedelta(hours=24)
    while at < now - timedelta(minutes=1):
        stamp = f"{at:%b} {at.day:>2} {at:%H:%M:%S} {host}"
        pid = rng.randrange(1000, 60000)
        kind = rng.random()
        if kind < 0.35:
            lines.append(f"{stamp} CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
        elif kind < 0.6:
            ip = f"203.0.113.{rng.randrange(1, 255)}"
            lines.append(f"{stamp} sshd[{pid}]: Failed password for invalid user admin from {ip} port {pid} ssh2")
        elif kind < 0.8:
            lines.append(f"{stamp} sshd[{pid}]: Accepted publickey for deploy from 10.20.0.5 port {pid} ssh2: ED25519 "
                         "SHA256:3q2+7w")  # fmt: skip
        else:
            lines.append(f"{stamp} sudo[{pid}]:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; "
                         "COMMAND=/usr/bin/systemctl restart nginx")  # fmt: skip
        at += timedelta(seconds=rng.uniform(60, 600))
    at = now
    lines.append(f"{at:%b} {at.day:>2} {at:%H:%M:%S} {host} sshd[4242]: Connection closed by 10.20.0.9 port 4242 "
                 f"[{marker}]")  # fmt: skip
    return "\n".join(lines) + "\n"


def podman(*args: str, stdin: str | None = None) -> str:
    """podman's output; its error in the exception (a lab that is not up says so here)."""
    done = subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode:
        raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def reader_session():  # noqa: ANN201 - the driver's Session
    """The dashboard's read-only account, as the pages read: what they show is what is waited for."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    ca = cluster_ca()
    context = None
    if ca:
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = False
    auth = PlainTextAuthProvider("iact_reader", secret("cassandra_reader_password"))
    cluster = Cluster([node_ip(n) for n in NODES], ssl_context=context, auth_provider=auth)
    return cluster, cluster.connect()


def wait(what: str, cond: Callable[[], object], timeout: float, t0: float) -> float:
    """Poll until cond() is truthy; the seconds since t0 when it was."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not there after {timeout:.0f} s")
        time.sleep(1)
    took = time.monotonic() - t0
    print(f"  {what}: {took:.1f} s")
    return took


def main() -> int:
    """Write the day, then wait for each page's rows; exit 1 (with the reason) if one never comes."""
    t0 = time.monotonic()
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(tag)
    marker = f"demo-{tag}"
    print(f"[demo] a day of traffic ({tag})")
    events = dora_events(now, rng, tag)
    dora_api("/api/dora/metrics", events)
    print(f"  DORA: {sum(e['type'] == 'deployment' for e in events)} deployments and 1 incident posted")
    for host in HOSTS:
        podman("exec", "-i", host, "sh", "-c", "cat >> /var/log/auth.log", stdin=auth_lines(host, now, rng, marker))
    print(f"  auth.log: a day of lines appended on {', '.join(HOSTS)}")
    with tempfile.TemporaryDirectory() as spool:
        print(f"  application logs: {ship_app_logs(now, rng, spool)} records through CassandraHandler")
    podman("exec", "app1", "systemctl", "start", "iact-alert.service")
    # The health job exits 1 when a check fails (a full disk on this machine, say): its snapshot is written
    # all the same, and the page shows the failure.
    health = subprocess.run(
        ["podman", "exec", "app1", "runuser", "-u", "iact-dora", "--", "/usr/local/bin/iact-dora", "dora_health"],
        capture_output=True, text=True, check=False, timeout=300,
    ).stdout  # fmt: skip
    print("[demo] alerter and health job ran; waiting for every page's rows")
    cluster, session = reader_session()
    try:
        hours = sorted({(t.date(), t.hour) for t in (now - timedelta(minutes=10), now, now + timedelta(minutes=2))})
        infra = session.prepare(
            "SELECT message FROM logging.infrastructure_logs WHERE host = ? AND day = ? AND hour = ?"
        )
        app = session.prepare("SELECT level FROM logging.application_logs WHERE host = 'app1' AND day = ? AND hour = ?")

        def auth_shipped() -> bool:
            return all(
                any(marker in (r.message or "") for hour in hours for r in session.execute(infra, (h, *hour)))
                for h in HOSTS
            )

        def burst_stored() -> bool:
            errors = sum(r.level == "ERROR" for hour in hours for r in session.execute(app, hour))
            return errors >= 60

        def firing() -> bool:
            rows = session.execute("SELECT firing FROM logging.alert_state WHERE rule = 'errors'")
            return any(r.firing for r in rows)

        # First the alert: it stays firing only while the burst is inside the rule's window.
        wait("/alerts/ `errors` firing", firing, 60, t0)
        wait("/ (DORA) the day's deployments", lambda: dora_api("/api/dora/metrics?period=7")["total_cycles"], 30, t0)
        wait("/logs/ application rows (the error burst)", burst_stored, 60, t0)
        wait("/logs/ infrastructure rows from every host", auth_shipped, 120, t0)
        wait(
            "/health/ fleet snapshot", lambda: re.search(r"\bfleet\b", health) and "not configured" not in health, 1, t0
        )
    finally:
        cluster.shutdown()
    print(f"[demo] every page populated {time.monotonic() - t0:.0f} s after the start")
    print(f"  https://{node_ip('app1')}/  (user admin, password in inventories/lab/.secrets/dora_admin_password)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
