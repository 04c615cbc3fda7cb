"""The appliance's policy, checked on one host; prints one JSON list of {check, ok, detail}.

Run by playbooks/compliance.yml with the collector's virtualenv Python (every host has it, with
PyYAML and the Cassandra driver), and the host's policy as one JSON argument. It only reads: it is
safe on a production host at any time. The playbook prints the fleet's table and fails on any FAIL.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

# What this appliance promises not to bring: no Redis, Prometheus, Grafana or Celery (nor Celery's
# transport, kombu). Names are matched as whole words inside package, unit and process names.
FORBIDDEN = re.compile(r"(^|[-_.@])(redis|redis-server|prometheus|grafana|grafana-server|celery|kombu)([-_.@]|$)", re.I)
INTERPRETERS = re.compile(r"^(python[0-9.]*|java|node|sh|bash)$")
DB_SESSIONS = {"django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"}


def run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a read-only command; a missing tool reads as an empty, failed result, never a crash."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


def result(check: str, ok: bool, detail: str) -> dict[str, object]:
    """One row of the fleet's table."""
    return {"check": check, "ok": ok, "detail": detail}


def forbidden_packages() -> dict[str, object]:
    """Installed Debian packages: the cheapest place to catch a forbidden service."""
    out = run("dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n").stdout
    found = [p for p, _, status in (line.partition(" ") for line in out.splitlines()) if status == "installed"]
    bad = sorted(p for p in found if FORBIDDEN.search(p))
    return result("no Redis/Prometheus/Grafana/Celery packages", not bad, ", ".join(bad) or f"{len(found)} packages")


def forbidden_services() -> dict[str, object]:
    """systemd units, installed or loaded: a service can exist without a package (a tarball, a container)."""
    out = run("systemctl", "list-unit-files", "--no-legend", "--plain").stdout
    out += run("systemctl", "list-units", "--all", "--no-legend", "--plain").stdout
    units = {line.split()[0] for line in out.splitlines() if line.strip()}
    bad = sorted(u for u in units if FORBIDDEN.search(u.rsplit(".", 1)[0]))
    return result("no Redis/Prometheus/Grafana/Celery services", not bad, ", ".join(bad) or f"{len(units)} units")


def program_names(argv: list[str]) -> list[str]:
    """argv[0], and the script an interpreter runs (python -m celery, python /usr/bin/celery)."""
    names = [os.path.basename(argv[0])] if argv else []
    if names and INTERPRETERS.match(names[0]):
        rest = [a for a in argv[1:] if not a.startswith("-")]
        if "-m" in argv[1:-1]:
            rest = [argv[argv.index("-m") + 1]]
        names += [os.path.basename(rest[0])] if rest else []
    return names


def forbidden_processes() -> dict[str, object]:
    """Running programs: catches what neither a package nor a unit shows (a pip-installed worker)."""
    bad, seen = [], 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = [a for a in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
        except OSError:
            continue
        seen += 1
        if any(FORBIDDEN.search(n) for n in program_names(argv)):
            bad.append(f"{proc.name}:{' '.join(argv)[:60]}")
    return result("no Redis/Prometheus/Grafana/Celery processes", not bad, ", ".join(bad) or f"{seen} processes")


def site_packages() -> list[Path]:
    """Where Python distributions live on an appliance host: our venvs and the system's."""
    roots = [*Path("/opt").glob("**/venv/lib/python3*/site-packages")]
    roots += [*Path("/usr/lib/python3").glob("dist-packages"), *Path("/usr/local/lib").glob("python3*/dist-packages")]
    return [r for r in roots if r.is_dir()]


def forbidden_python() -> dict[str, object]:
    """Python distributions: a Celery or Redis client pulled in as a dependency is still a dependency."""
    bad, count = [], 0
    for root in site_packages():
        for meta in root.glob("*.dist-info"):
            count += 1
            name = meta.name.split("-")[0]
            if FORBIDDEN.search(name):
                bad.append(f"{name} in {root}")
    return result("no Redis/Prometheus/Grafana/Celery Python packages", not bad, ", ".join(bad) or f"{count} dists")


def listeners(allowed: list[str]) -> dict[str, object]:
    """TCP listeners by process name: anything else listening is an unexpected service.

    Where the kernel does not say which process owns a socket (root without CAP_SYS_PTRACE, as in
    a container), the socket's owning user stands in for it: `cassandra`, `mysql`, `iact-dora`.
    """
    import pwd

    out = run("ss", "-Htlnpe")
    if out.returncode != 0:
        return result("only expected services listen", False, f"ss failed: {out.stderr.strip()}")
    seen, bad = set(), set()
    for line in out.stdout.splitlines():
        fields = line.split()
        port = fields[3].rsplit(":", 1)[-1] if len(fields) > 3 else "?"
        names = re.findall(r'\("([^"]+)"', line)
        uid = re.search(r"\buid:(\d+)", line)
        if not names and uid:
            try:
                names = [pwd.getpwuid(int(uid.group(1))).pw_name]
            except KeyError:
                names = [f"uid {uid.group(1)}"]
        for name in names or ["root"]:
            seen.add(f"{name}:{port}")
            if name not in allowed:
                bad.add(f"{name}:{port}")
    detail = "unexpected " + ", ".join(sorted(bad)) if bad else ", ".join(sorted(seen)) or "nothing"
    return result("only expected services listen", not bad, detail)


def unit_user(unit: str) -> tuple[str, int | None]:
    """A unit's state and the uid of its main process (what actually runs, not what the unit file says)."""
    shown = run("systemctl", "show", unit, "-p", "MainPID", "-p", "ActiveState", "--value").stdout.split()
    if len(shown) < 2 or shown[1] != "active" or shown[0] == "0":
        return "inactive", None
    status = Path(f"/proc/{shown[0]}/status").read_text()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    return "active", uid


def agents_unprivileged(agents: dict[str, str]) -> list[dict[str, object]]:
    """Each agent's main process runs as its own non-root user."""
    import pwd

    results = []
    for unit, user in sorted(agents.items()):
        state, uid = unit_user(unit)
        if uid is None:
            results.append(result(f"{unit} runs as {user}", False, f"{unit} is {state}"))
            continue
        name = pwd.getpwuid(uid).pw_name
        results.append(result(f"{unit} runs as {user}", uid != 0 and name == user, f"uid {uid} ({name})"))
    return results


def cron_jobs_unprivileged(cron_files: list[str]) -> list[dict[str, object]]:
    """Scheduled jobs run as their service user, never root (/etc/cron.d lines name the user)."""
    results = []
    for path in cron_files:
        p = Path(path)
        if not p.exists():
            results.append(result(f"{p.name} jobs are unprivileged", False, f"{path} is missing"))
            continue
        jobs = [ln.split() for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        users = sorted({j[5] for j in jobs if len(j) > 6 and "=" not in j[0]})
        ok = bool(users) and "root" not in users
        results.append(result(f"{p.name} jobs are unprivileged", ok, "users: " + (", ".join(users) or "none")))
    return results


def load_yaml(path: str) -> dict:
    """Parse one of our YAML configs (PyYAML is in the collector's venv this script runs with)."""
    import yaml

    return yaml.safe_load(Path(path).read_text()) or {}


def smtp_checks(policy: dict) -> list[dict[str, object]]:
    """Every SMTP client setting points at a relay the operator listed (none by default: console mail)."""
    relays = set(policy.get("smtp_relays", []))
    found: list[str] = []
    if policy.get("dora_manage"):
        out = run(policy["dora_manage"], "diffsettings", "--all")
        backend = re.search(r"^(?:### )?EMAIL_BACKEND = '([^']*)'", out.stdout, re.M)
        host = re.search(r"^(?:### )?EMAIL_HOST = '([^']*)'", out.stdout, re.M)
        if backend and backend.group(1).endswith(".smtp.EmailBackend"):
            found.append(f"dora:{host.group(1) if host else '?'}")
    if policy.get("alerting_config") and Path(policy["alerting_config"]).exists():
        email = (load_yaml(policy["alerting_config"]).get("channels") or {}).get("email") or {}
        if email.get("host"):
            found.append(f"alerting:{email['host']}")
    main_cf = Path("/etc/postfix/main.cf")
    if main_cf.exists():
        relay = re.search(r"^relayhost\s*=\s*\[?([^\]:\s]*)", main_cf.read_text(), re.M)
        if relay and relay.group(1):
            found.append(f"postfix:{relay.group(1)}")
    bad = [f for f in found if f.split(":", 1)[1] not in relays]
    detail = ("external " + ", ".join(bad)) if bad else (", ".join(found) or "no SMTP client configured")
    return [result("no external SMTP relay configured", not bad, detail)]


def django_sessions(manage: str) -> dict[str, object]:
    """The dashboard keeps sessions in its database (no cache or Redis session store)."""
    out = run(manage, "diffsettings", "--all")
    engine = re.search(r"^(?:### )?SESSION_ENGINE = '([^']*)'", out.stdout, re.M)
    if not engine:
        return result("Django sessions in the database", False, f"diffsettings failed: {out.stderr.strip()[-200:]}")
    return result("Django sessions in the database", engine.group(1) in DB_SESSIONS, engine.group(1))


def cassandra_auth(policy: dict) -> list[dict[str, object]]:
    """Passwords are required (PasswordAuthenticator) and the default superuser is refused."""
    conf = Path(policy["cassandra_conf"])
    text = conf.read_text() if conf.exists() else ""
    auth = re.search(r"^authenticator:\s*(\S+)", text, re.M)
    name = auth.group(1) if auth else "missing"
    results = [result("Cassandra authentication on", name.endswith("PasswordAuthenticator"), name)]
    ca_file = policy.get("ca_file") if Path(policy.get("ca_file") or "/nonexistent").is_file() else None
    results.append(default_superuser_refused(policy["cassandra_address"], int(policy["cassandra_port"]), ca_file))
    return results


def _tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """TLS verified against the appliance CA, when the host has it (the cluster is TLS-only by default)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


def cassandra_tls(policy: dict) -> list[dict[str, object]]:
    """Client and internode TLS are on and mandatory, with peer verification, and the audit log is on."""
    import yaml

    conf = Path(policy["cassandra_conf"])
    data = (yaml.safe_load(conf.read_text()) if conf.exists() else None) or {}
    client = data.get("client_encryption_options") or {}
    server = data.get("server_encryption_options") or {}
    audit = data.get("audit_logging_options") or {}
    client_ok = bool(client.get("enabled")) and not client.get("optional", False)
    internode_ok = server.get("internode_encryption") == "all" and not server.get("optional", False)
    verify_ok = bool(server.get("require_client_auth")) and bool(server.get("require_endpoint_verification"))
    categories = {c.strip() for c in str(audit.get("included_categories", "")).split(",") if c.strip()}
    return [
        result(
            "Cassandra client TLS on, TLS only",
            client_ok,
            f"enabled={client.get('enabled')} optional={client.get('optional')}",
        ),
        result(
            "Cassandra internode TLS on, mutual, hostname verified",
            internode_ok and verify_ok,
            f"internode_encryption={server.get('internode_encryption')} optional={server.get('optional')} "
            f"require_client_auth={server.get('require_client_auth')} "
            f"require_endpoint_verification={server.get('require_endpoint_verification')}",
        ),
        result(
            "Cassandra audit log on (AUTH, DDL, DCL)",
            bool(audit.get("enabled")) and {"AUTH", "DDL", "DCL"} <= categories,
            f"enabled={audit.get('enabled')} categories={','.join(sorted(categories)) or 'all'}",
        ),
    ]


def plaintext_answer(address: str, port: int, payload: bytes) -> str:
    """What a plaintext client gets: 'closed' (what a TLS-only port does), 'refused', or the bytes it answered."""
    try:
        with socket.create_connection((address, port), timeout=5) as s:
            s.sendall(payload)
            s.settimeout(5)
            data = s.recv(64)
    except TimeoutError:
        return "no answer within 5 s (a plaintext listener waiting for more)"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"closed ({exc.__class__.__name__})"
    # A TLS-only port closes at once, at most after a TLS alert record (0x15).
    return "closed" if not data or data[0] == 0x15 else f"answered {data[:8].hex()}"


def cassandra_ports_from_here(policy: dict) -> list[dict[str, object]]:
    """From this host, every node refuses plaintext on 9042 and 7000, and JMX is not reachable."""
    cql_options = bytes([0x05, 0, 0, 1, 0x05, 0, 0, 0, 0])
    internode_magic = bytes.fromhex("ca552dfa") + bytes(8)
    results = []
    for node, address in sorted(policy.get("cassandra_nodes", {}).items()):
        for port, payload, what in (
            (int(policy["cassandra_port"]), cql_options, "native"),
            (int(policy["cassandra_storage_port"]), internode_magic, "storage"),
        ):
            got = plaintext_answer(address, port, payload)
            ok = got == "closed" or got.startswith("closed") or got == "refused"
            results.append(result(f"plaintext refused by {node} on its {what} port {port}", ok, got))
        jmx = plaintext_answer(address, int(policy["cassandra_jmx_port"]), b"")
        results.append(
            result(
                f"JMX of {node} not reachable from here ({address}:{policy['cassandra_jmx_port']})",
                jmx == "refused",
                jmx,
            )
        )
    return results


def certificate_checks(policy: dict) -> list[dict[str, object]]:
    """The certificate this node serves verifies against the CA, names its address, and is not about to expire."""
    import time

    address, port, min_days = policy["cassandra_address"], int(policy["cassandra_port"]), int(policy["cert_min_days"])
    check = f"certificate served on {address}:{port} valid for {min_days}+ days"
    try:
        context = ssl.create_default_context(cafile=policy["ca_file"])
        with (
            socket.create_connection((address, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=address) as s,
        ):
            not_after = ssl.cert_time_to_seconds(s.getpeercert()["notAfter"])
    except (OSError, ssl.SSLError, ValueError) as exc:
        return [result(check, False, f"TLS handshake failed: {exc}")]
    days = (not_after - time.time()) / 86400
    return [result(check, days >= min_days, f"expires in {days:.0f} days")]


def jmx_needs_credentials(policy: dict) -> dict[str, object]:
    """nodetool without the wrapper's user and password file is refused by this node's JMX."""
    check = "JMX refuses nodetool without credentials"
    out = run(policy["nodetool_real"], "-h", "127.0.0.1", "-p", str(policy["cassandra_jmx_port"]), "version")
    text = (out.stdout + out.stderr).strip()
    refused = out.returncode != 0 and re.search(r"[Cc]redentials|[Aa]uthentication failed|username", text) is not None
    return result(check, refused, "refused" if refused else f"rc={out.returncode}: {text[-160:]}")


def default_superuser_refused(address: str, port: int, ca_file: str | None = None) -> dict[str, object]:
    """Log in as cassandra/cassandra: the appliance must have disabled that account."""
    from cassandra import AuthenticationFailed
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster, NoHostAvailable
    from cassandra.policies import WhiteListRoundRobinPolicy

    check = "default superuser cassandra cannot log in"
    cluster = Cluster(
        [address],
        port=port,
        auth_provider=PlainTextAuthProvider("cassandra", "cassandra"),
        load_balancing_policy=WhiteListRoundRobinPolicy([address]),
        connect_timeout=10,
        protocol_version=5,
        ssl_context=_tls_context(ca_file),
    )
    try:
        cluster.connect().shutdown()
        return result(check, False, f"logged in at {address}:{port}")
    except NoHostAvailable as exc:
        errors = list(exc.errors.values())
        refused = any(isinstance(e, AuthenticationFailed) or "Bad credentials" in str(e) for e in errors)
        return result(check, refused, "refused: bad credentials" if refused else f"could not check: {errors}")
    except OSError as exc:
        return result(check, False, f"could not check: {exc}")
    finally:
        cluster.shutdown()


def main() -> int:
    """Run every check that applies to this host's roles and print the rows as JSON."""
    policy = json.loads(sys.argv[1])
    results = [forbidden_packages(), forbidden_services(), forbidden_processes(), forbidden_python()]
    results.append(listeners(policy["listeners"]))
    results += agents_unprivileged(policy.get("agents", {}))
    results += cron_jobs_unprivileged(policy.get("cron_files", []))
    results += smtp_checks(policy)
    if policy.get("dora_manage"):
        results.append(django_sessions(policy["dora_manage"]))
    if policy.get("cassandra_conf"):
        results += cassandra_auth(policy)
        if policy.get("tls_required"):
            results += cassandra_tls(policy) + certificate_checks(policy)
        if policy.get("jmx_auth"):
            results.append(jmx_needs_credentials(policy))
    if policy.get("tls_required"):
        results += cassandra_ports_from_here(policy)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
