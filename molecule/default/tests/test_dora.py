"""The DORA dashboard alone on its app host: through nginx, the API, the jobs, backup and restore.

The same role runs in the `full` scenario beside Cassandra; its tests there check what needs the
cluster (the dashboard's own logs, the health check's Cassandra probe).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import shlex
import socket
import ssl
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import testinfra
from conftest import APP_HOST, node_ip, playbook, recap, secret
from cryptography import x509

UNVERIFIED = ssl._create_unverified_context()  # the lab's self-signed certificate
# What nginx adds to every answer it gives for the site, whichever location or status.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@pytest.fixture(scope="module")
def dora():
    return testinfra.get_host(f"podman://{APP_HOST}")


@pytest.fixture(scope="module")
def base_url():
    return f"https://{node_ip(APP_HOST)}"


def request(url, body=None, token=None, method=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30, context=UNVERIFIED) as response:
            headers = dict(response.headers) | {"final-url": response.geturl()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url, host=None, method="GET", data=None):
    """One request as a browser sends it, redirects not followed: (status, headers as a Message, body)."""
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=UNVERIFIED), _NoRedirect)
    req = urllib.request.Request(url, data=data, method=method, headers={"Host": host} if host else {})
    try:
        with opener.open(req, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def mariadb(host, sql, database="dora"):
    return host.check_output(f"mariadb -N -B {database} -e {sql!r}")


def test_services_run_hardened_and_as_their_users(dora):
    for name in ("mariadb", "nginx", "iact-dora"):
        assert dora.service(name).is_running and dora.service(name).is_enabled, name
    workers = dora.process.filter(comm="gunicorn")
    assert workers and {p.user for p in workers} == {"iact-dora"}
    show = dora.check_output("systemctl show iact-dora -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p User")
    assert "NoNewPrivileges=yes" in show and "ProtectSystem=strict" in show and "PrivateTmp=yes" in show
    assert "User=iact-dora" in show
    listening = dora.check_output("ss -Htlnp")
    assert "127.0.0.1:3306" in listening and "0.0.0.0:3306" not in listening
    assert "127.0.0.1:8000" in listening


def test_the_dashboard_runs_confined(dora):
    """What the unit's hardening does to the running gunicorn, read from the kernel (not the unit file)."""
    pid = dora.check_output("systemctl show -p MainPID --value iact-dora")
    status = dict(line.split(":\t", 1) for line in dora.file(f"/proc/{pid}/status").content_string.splitlines())
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"  # seccomp filter mode
    assert int(status["CapBnd"], 16) == 0 and int(status["CapEff"], 16) == 0
    mountinfo = dora.file(f"/proc/{pid}/mountinfo").content_string.splitlines()
    mounts = {f[4]: f[5].split(",") for f in (line.split() for line in mountinfo)}  # the last mount wins
    assert "ro" in mounts["/"], mounts["/"]  # ProtectSystem=strict: the whole tree read-only ...
    for writable in ("/var/lib/iact/dora", "/var/log/iact/dora"):  # ... but for ReadWritePaths
        assert "rw" in mounts[writable], (writable, mounts.get(writable))
    for hidden in ("/tmp", "/var/tmp", "/root"):  # PrivateTmp, ProtectHome
        assert hidden in mounts, hidden
    exposure = dora.check_output("systemd-analyze security --no-pager iact-dora | tail -1")
    assert float(exposure.split("exposure level for iact-dora.service:")[1].split()[0]) <= 2.5, exposure


def test_database_user_has_privileges_on_its_database_only(dora):
    grants = mariadb(dora, "SHOW GRANTS FOR 'dora'@'localhost'", database="mysql")
    assert "ON `dora`.*" in grants
    assert "ON *.*" not in grants.replace("GRANT USAGE ON *.*", "")
    config = dora.file("/etc/iact/dora/dora.yaml")
    assert config.mode == 0o640 and config.group == "iact-dora"
    assert dora.file("/etc/iact/dora/secret_key").mode == 0o640
    assert "debug: false" in config.content_string


def test_site_answers_through_nginx_with_tls_and_headers(base_url):
    status, headers, body = request(f"{base_url}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, headers, _ = request(f"{base_url}/api/dora/dashboard/")
    assert status == 200 and "/accounts/login/?next=" in headers["final-url"]  # the page needs a login
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, headers, body = request(f"{base_url}/static/dora/vendor/chart.umd.min.js")
    assert status == 200 and b"Chart" in body[:2000]
    assert headers["Server"] == "nginx"  # served from disk by nginx, not by Django


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 302),  # Django's redirect to the dashboard
        ("/healthz", 200),
        ("/api/dora/dashboard/", 302),  # to the login page
        ("/accounts/login/", 200),
        ("/api/dora/metrics", 401),  # no token
        ("/static/dora/vendor/chart.umd.min.js", 200),  # from disk
        ("/static/admin/css/base.css", 200),
        ("/static/no-such-file.js", 404),  # nginx's own error page
        ("/admin/login/", 403),  # nginx: /admin/ answers loopback only in this scenario (host_vars/dash1.yml)
    ],
)
def test_every_path_gets_the_security_headers_once(base_url, path, status):
    got, headers, _ = fetch(base_url + path)
    assert got == status, path
    for name, value in SECURITY_HEADERS.items():
        values = headers.get_all(name) or []
        assert len(values) == 1 and value in values[0], f"{path}: {name}: {values}"
    assert headers["Server"] == "nginx"  # no version
    if path.startswith("/static/dora/"):
        assert "max-age=604800" in headers["Cache-Control"]


def test_admin_answers_from_an_allowed_network_with_the_admin_policy(dora):
    """From the host itself (127.0.0.1, the allowed network) /admin/login/ is Django's page, under a policy
    that lets the admin's stylesheet work and still refuses inline scripts and framing."""
    probe = (
        "import ssl, urllib.request; "
        "q = urllib.request.Request('https://127.0.0.1/admin/login/', headers={'Host': '" + APP_HOST + "'}); "
        "r = urllib.request.urlopen(q, context=ssl._create_unverified_context(), timeout=30); "
        "print(r.status); print(r.headers['Content-Security-Policy']); print(r.headers['X-Frame-Options'])"
    )
    status, csp, frame = dora.check_output(f"python3 -c {probe!r}").splitlines()
    assert status == "200" and frame == "DENY"
    policy = dict(d.strip().split(None, 1) for d in csp.split(";") if d.strip())
    assert policy.get("script-src", policy["default-src"]) == "'self'"
    assert policy["style-src"] == "'self' 'unsafe-inline'" and policy["frame-ancestors"] == "'none'"


def tls_connect(ip, version=None, ciphers=None, cafile=None):
    """A TLS handshake with the site, optionally pinned to one protocol version or cipher list."""
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    if version:
        context.minimum_version = context.maximum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old protocols: the server must refuse
    if ciphers:
        context.set_ciphers(ciphers)
    raw = socket.create_connection((ip, 443), timeout=15)
    return context.wrap_socket(raw, server_hostname=ip)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_before_1_2_is_refused_by_the_server(version):
    with pytest.raises(ssl.SSLError) as refused:
        tls_connect(node_ip(APP_HOST), version).close()
    # The server's alert, not this client declining to offer the version.
    assert "ALERT_PROTOCOL_VERSION" in str(refused.value).upper() or "PROTOCOL_VERSION" in refused.value.reason


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_accepted_with_forward_secret_aead_ciphers(version):
    with tls_connect(node_ip(APP_HOST), version) as tls:
        assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        name = tls.cipher()[0]
        if version == ssl.TLSVersion.TLSv1_2:
            assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name
            tls.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: " + APP_HOST.encode() + b"\r\nConnection: close\r\n\r\n")
            tls.recv(1024)
            assert not tls.session.has_ticket  # session tickets off (their keys would outlive every session)


def test_cbc_ciphers_of_tls_1_2_are_refused():
    cbc = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA"
    with pytest.raises(ssl.SSLError):
        tls_connect(node_ip(APP_HOST), ssl.TLSVersion.TLSv1_2, ciphers=cbc).close()


def test_the_certificate_verifies_for_the_host_name_and_address(dora, tmp_path):
    """A client given the generated certificate as its CA (IACT_DORA_CA_FILE) verifies the address it dials."""
    pem = dora.file("/etc/iact/dora/tls/dora.crt").content_string
    (tmp_path / "dora.crt").write_text(pem)
    ip = node_ip(APP_HOST)
    cert = x509.load_pem_x509_certificate(pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert APP_HOST in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address(ip) in san.get_values_for_type(x509.IPAddress)
    with tls_connect(ip, cafile=str(tmp_path / "dora.crt")) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert dora.file("/etc/iact/dora/tls/dora.key").mode == 0o600
    assert dora.file("/etc/iact/dora/tls/dora.key").user == "root"


@pytest.mark.parametrize("port", [80, 443])
def test_an_unknown_host_header_gets_the_connection_closed_before_django(dora, port):
    ip, probe = node_ip(APP_HOST), f"/unknown-host-probe-{uuid.uuid4().hex}"
    if port == 443:
        conn = http.client.HTTPSConnection(ip, port, timeout=15, context=UNVERIFIED)
    else:
        conn = http.client.HTTPConnection(ip, port, timeout=15)
    try:
        conn.request("GET", probe, headers={"Host": "evil.example"})
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    finally:
        conn.close()
    # Nor does a request without a Host header (HTTP/1.0) reach Django.
    with socket.create_connection((ip, port), timeout=15) as raw:
        sock = UNVERIFIED.wrap_socket(raw, server_hostname=ip) if port == 443 else raw
        sock.sendall(f"GET {probe} HTTP/1.0\r\n\r\n".encode())
        assert sock.recv(1024) == b""
    assert probe not in dora.check_output("cat /var/log/iact/dora/access.log")


def test_logins_are_rate_limited_by_nginx(base_url):
    """A burst of login POSTs from one address: Django answers the first ones (403, no CSRF token), then
    nginx refuses with 429 before they reach Django."""
    statuses = [fetch(f"{base_url}/accounts/login/", method="POST", data=b"username=x&password=y")[0]
                for _ in range(40)]  # fmt: skip
    assert statuses[:15] == [403] * 15, statuses
    assert 429 in statuses, statuses


def test_http_redirects_to_https():
    ip = node_ip(APP_HOST)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as exc:
        opener.open(f"http://{ip}/api/dora/dashboard/", timeout=10)
    assert exc.value.code == 301 and exc.value.headers["Location"].startswith("https://")


def test_api_records_a_deployment_once(base_url, dora):
    token = secret("dora_ci_token")
    finished = datetime.now(UTC) - timedelta(minutes=5)
    event = {
        "type": "deployment",
        "id": "molecule-run-1",
        "service": "checkout",
        "started_at": (finished - timedelta(minutes=3)).isoformat(),
        "finished_at": finished.isoformat(),
        "status": "success",
        "commits": [{"sha": "0123abc", "committed_at": (finished - timedelta(hours=2)).isoformat()}],
    }
    assert request(f"{base_url}/api/dora/metrics", event)[0] == 401
    first, _, body = request(f"{base_url}/api/dora/metrics", event, token)
    assert first in (200, 201), body
    assert request(f"{base_url}/api/dora/metrics", event, token)[0] == 200
    assert mariadb(dora, "SELECT COUNT(*) FROM dora_deployment WHERE external_id='molecule-run-1'") == "1"
    status, _, body = request(f"{base_url}/api/dora/metrics?period=7&service=checkout", token=token)
    summary = json.loads(body)
    assert status == 200 and summary["total_cycles"] == 1
    assert summary["lead_time"]["median_hours"] == pytest.approx(2.0, abs=0.01)


JOB = "/opt/iact/dora/venv/bin/iact-dora-job"


def test_jobs_are_installed_and_the_health_check_passes(dora):
    cron = dora.file("/etc/cron.d/iact-dora").content_string
    assert f"*/6 * * * iact-dora {JOB} sessions --status-dir /var/lib/iact/dora/jobs -- iact-dora clearsessions" in cron
    assert f"*/5 * * * * iact-dora {JOB} health --status-dir /var/lib/iact/dora/jobs -- iact-dora dora_health" in cron
    assert f"0 2 * * * root {JOB} backup --status-dir /var/lib/iact/dora-backup -- iact-dora-backup" in cron
    out = dora.run("runuser -u iact-dora -- /usr/local/bin/iact-dora dora_health")
    assert out.rc == 0, out.stdout + out.stderr
    status = json.loads(dora.file("/var/lib/iact/dora/health.json").content_string)
    assert status["ok"] is True
    assert set(status["checks"]) == {"database", "cassandra", "disk", "http"}
    assert status["checks"]["cassandra"]["detail"] == "not configured"  # no cassandra group here


def test_health_check_fails_and_says_why_when_the_app_is_down(dora):
    dora.check_output("systemctl stop iact-dora")
    try:
        out = dora.run("runuser -u iact-dora -- /usr/local/bin/iact-dora dora_health")
        status = json.loads(dora.file("/var/lib/iact/dora/health.json").content_string)
    finally:
        dora.check_output("systemctl start iact-dora")
    assert out.rc != 0 and "unhealthy" in out.stderr, out.stdout + out.stderr
    assert status["ok"] is False
    assert status["checks"]["http"]["ok"] is False and status["checks"]["database"]["ok"] is True


def test_each_cron_line_records_its_run_where_the_dashboard_reads_it(dora):
    """Every line of the cron file run as cron runs it: the job's status lands in its directory, root's in a
    root-owned one the dashboard's user can read, and the dashboard's configuration names the same files."""
    cron = dora.file("/etc/cron.d/iact-dora").content_string
    lines = [line.split(None, 5)[5] for line in cron.splitlines() if JOB in line]
    assert len(lines) == 3, cron
    for line in lines:
        user, command = line.split(None, 1)
        wrapped = f"sh -c {shlex.quote(command)}"
        out = dora.run(wrapped if user == "root" else f"runuser -u {user} -- {wrapped}")
        assert out.rc == 0 and out.stdout == "", out.stdout + out.stderr
    for path, owner in (("/var/lib/iact/dora/jobs/sessions.json", "iact-dora"),
                        ("/var/lib/iact/dora/jobs/health.json", "iact-dora"),
                        ("/var/lib/iact/dora-backup/backup.json", "root")):  # fmt: skip
        status = json.loads(dora.check_output(f"runuser -u iact-dora -- cat {path}"))
        assert status["last"]["ok"] is True and status["running_since"] is None, (path, status)
        assert (dora.file(path).user, dora.file(path).mode) == (owner, 0o644)
    root_dir = dora.file("/var/lib/iact/dora-backup")
    assert (root_dir.user, root_dir.group, root_dir.mode) == ("root", "root", 0o755)
    backup = json.loads(dora.file("/var/lib/iact/dora-backup/backup.json").content_string)
    assert backup["last"]["last_line"].startswith("/var/backups/iact/dora/dora-"), "the dump's path, its last line"
    config = dora.check_output("runuser -u iact-dora -- cat /etc/iact/dora/dora.yaml")
    for path in ("/var/lib/iact/dora/jobs/sessions.json", "/var/lib/iact/dora-backup/backup.json"):
        assert path in config


def test_root_jobs_log_outside_the_service_owned_directory(dora):
    """The service user owns /var/log/iact/dora; root's backup job writes its log in a root-owned place."""
    cron = dora.file("/etc/cron.d/iact-dora").content_string
    root_jobs = [line for line in cron.splitlines() if " root " in line]
    assert root_jobs and all("/var/log/iact/dora/" not in line for line in root_jobs), root_jobs
    assert ">> /var/log/iact/dora-backup/backup.log" in cron
    backup_logs = dora.file("/var/log/iact/dora-backup")
    assert (backup_logs.user, backup_logs.group, backup_logs.mode) == ("root", "root", 0o750)
    rotate = dora.file("/etc/logrotate.d/iact-dora").content_string
    service_stanza = rotate.split("/var/log/iact/dora/*.log", 1)[1].split("}", 1)[0]
    assert "su iact-dora iact-dora" in service_stanza
    check = dora.run("logrotate --debug /etc/logrotate.d/iact-dora")
    assert check.rc == 0 and "error" not in check.stderr.lower(), check.stderr


def test_root_never_follows_a_link_planted_in_the_service_owned_log_directory(dora):
    """The service user swaps its log files for links to a root-only file; the next playbook run must leave
    that file alone (Ansible's file module follows links by default: it would hand the file to iact-dora)."""
    canary, logs = "/etc/iact-dora-canary", "/var/log/iact/dora"
    dora.check_output(f"printf canary > {canary} && chmod 0600 {canary}")
    names = ("app.json.log", "health.log")
    for name in names:
        plant = f"touch {logs}/{name}; mv {logs}/{name} {logs}/{name}.real; ln -s {canary} {logs}/{name}"
        dora.check_output(f"runuser -u iact-dora -- sh -c '{plant}'")
    try:
        run = playbook("playbooks/dora.yml")
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert recap(run.stdout)[APP_HOST]["failed"] == 0
        planted = dora.file(canary)
        assert (planted.user, planted.group, planted.mode) == ("root", "root", 0o600)
        assert planted.content_string == "canary"
    finally:
        for name in names:
            dora.run(f"runuser -u iact-dora -- sh -c 'rm -f {logs}/{name}; mv {logs}/{name}.real {logs}/{name}'")
        dora.run(f"rm -f {canary}")


def test_backup_restores_into_a_scratch_database(dora):
    dump = dora.check_output("iact-dora-backup").splitlines()[-1]
    assert dora.file(dump).mode == 0o600
    dora.check_output(f"iact-dora-restore {dump} --database dora_scratch")
    try:
        for table in ("dora_deployment", "dora_commit", "auth_user", "dora_apitoken"):
            live = mariadb(dora, f"SELECT COUNT(*) FROM {table}")
            restored = mariadb(dora, f"SELECT COUNT(*) FROM {table}", database="dora_scratch")
            assert restored == live, table
        assert int(mariadb(dora, "SELECT COUNT(*) FROM dora_deployment", database="dora_scratch")) >= 1
        refused = dora.run(f"iact-dora-restore {dump} --database dora")
        assert refused.rc == 2 and "--live" in refused.stderr
    finally:
        dora.run("mariadb -e 'DROP DATABASE IF EXISTS dora_scratch'")
