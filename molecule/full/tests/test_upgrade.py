"""A rolling upgrade of the agents (playbooks/upgrade_agents.yml): batches, a stop at the first failure,
and no line lost while every node keeps logging.

The batches are read from two independent sources: the window the play reports for each host, and
the moment systemd started each host's agent (ExecMainStartTimestamp, the containers share the
controller's clock). The failure case comes first: it leaves the hosts it touched on a version
that the good rollout after it replaces, and its own clean-up puts them back if it runs alone.
"""

import itertools
import re
import shutil
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cassandra.query import SimpleStatement
from conftest import (
    NODES,
    ROOT,
    Writers,
    inventory,
    operator_env,
    playbook,
    podman,
    secret,
    start_writer,
    wait_until,
)


def collectors_in_order() -> tuple[str, ...]:
    """The collectors group in the order a play batches it: Molecule's generated inventory and the
    lab's list the hosts differently."""
    out = subprocess.run(
        ["ansible", "collectors", "-i", str(inventory()), "--list-hosts"], capture_output=True, text=True, check=True,
        env=operator_env(),
    ).stdout  # fmt: skip
    return tuple(line.strip() for line in out.splitlines()[1:] if line.strip())


COLLECTORS = collectors_in_order()
JSON_OUTPUT = {"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}  # one line per message, whatever its length
WINDOW = re.compile(r'"msg": "(\w+): iact-collector (\S+), lag (\d+) bytes, upgrade window ([\d.]+) ([\d.]+)"')
SABOTAGED_HOST = "cass2"


def bumped_source(tmp_path: Path, sabotage_on: str | None = None) -> tuple[Path, str]:
    """A copy of the repository's package with the next version number.

    With `sabotage_on`, that version's health check (`iact-collector status`) fails on that host
    only: the package installs and the agent runs, but the host never passes the rollout's check.
    """
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "scripts", src / "scripts")  # the build fetches the dashboard's Chart.js with it
    shutil.copytree(
        ROOT / "agents", src / "agents", ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info")
    )
    init = src / "agents" / "iact" / "__init__.py"
    old = re.search(r'__version__ = "([^"]+)"', init.read_text()).group(1)
    new = f"{old}.post{uuid.uuid4().int % 1000 + 1}"
    init.write_text(init.read_text().replace(old, new))
    if sabotage_on:
        cli = src / "agents" / "iact" / "collector" / "cli.py"
        text = cli.read_text()
        sabotaged = text.replace(
            "def _cmd_status(args: argparse.Namespace) -> int:\n",
            "def _cmd_status(args: argparse.Namespace) -> int:\n"
            f"    if __import__('socket').gethostname() == {sabotage_on!r}:\n"
            f"        raise SystemExit('status sabotaged by the upgrade test on {sabotage_on}')\n",
            1,
        )
        assert sabotaged != text, "the sabotage did not apply: iact.collector.cli changed shape"
        cli.write_text(sabotaged)
    return src, new


def agent_started(node: str) -> float:
    """When systemd started the node's agent (epoch seconds, microsecond resolution)."""
    out = podman(
        "exec", node, "systemctl", "show", "--timestamp=us+utc", "-p", "ExecMainStartTimestamp", "--value",
        "iact-collector",
    ).stdout.strip()  # fmt: skip
    return datetime.strptime(out, "%a %Y-%m-%d %H:%M:%S.%f %Z").replace(tzinfo=UTC).timestamp()


def installed_version(node: str) -> str:
    return podman("exec", node, "/opt/iact/collector/venv/bin/iact-collector", "--version").stdout.split()[-1]


def upgrade(src: Path, *extra: str) -> subprocess.CompletedProcess:
    return playbook("playbooks/upgrade_agents.yml", "-e", f"collector_agent_source_dir={src}", *extra, env=JSON_OUTPUT)


@pytest.fixture(scope="module")
def sabotaged_hosts():
    """Hosts a failed rollout left on a broken version; unless a complete rollout replaced it since
    (the next test's), the repository's own version is put back on them at the end of the module."""
    left: set[str] = set()
    yield left
    if left:
        run = upgrade(ROOT, "--limit", ",".join(sorted(left)))
        assert run.returncode == 0, "restoring the repository's agent version failed:\n" + run.stdout[-3000:]


def test_the_first_failure_stops_the_rollout_and_names_the_host(tmp_path, sabotaged_hosts):
    src, version = bumped_source(tmp_path, sabotage_on=SABOTAGED_HOST)
    sabotaged_hosts.update(COLLECTORS[: COLLECTORS.index(SABOTAGED_HOST) + 1])
    after = COLLECTORS[COLLECTORS.index(SABOTAGED_HOST) + 1 :]
    before = {n: (agent_started(n), installed_version(n)) for n in after}
    run = upgrade(src, "-e", "collector_agent_upgrade_serial=1", "-e", "collector_agent_upgrade_timeout=20")
    assert run.returncode != 0, "a host whose agent does not come back must fail the rollout"
    reported = {m.group(1): m.group(2) for m in WINDOW.finditer(run.stdout)}
    ahead = COLLECTORS[: COLLECTORS.index(SABOTAGED_HOST)]
    assert reported == dict.fromkeys(ahead, version), f"only the hosts before the failing one completed: {reported}"
    assert f"{SABOTAGED_HOST}: the upgrade to iact-collector {version} failed at" in run.stdout, run.stdout[-3000:]
    assert "the rollout stops here" in run.stdout
    for node in after:
        assert (agent_started(node), installed_version(node)) == before[node], f"{node} was touched after the failure"
        assert f"[{node}]" not in run.stdout, f"the play ran a task on {node} after the failure"


def test_rolling_upgrade_goes_batch_by_batch_and_loses_no_line(tmp_path, connect, sabotaged_hosts):
    serial = 2
    src, version = bumped_source(tmp_path)
    run = uuid.uuid4().hex[:8]
    for node in NODES:
        start_writer(node, "upgtest", run, "/tmp/upg-stop", "/tmp/upg-count")
    upgraded = upgrade(src, "-e", f"collector_agent_upgrade_serial={serial}")
    for node in NODES:
        podman("exec", node, "touch", "/tmp/upg-stop")
    assert upgraded.returncode == 0, upgraded.stdout[-4000:] + upgraded.stderr[-2000:]
    sabotaged_hosts.clear()  # every host now runs this good version

    # Batches: each host restarted inside its own window, and no batch began before the one ahead of it ended.
    windows = {m.group(1): (m.group(2), float(m.group(4)), float(m.group(5))) for m in WINDOW.finditer(upgraded.stdout)}
    assert sorted(windows) == sorted(COLLECTORS), f"each host reports its upgrade: {sorted(windows)}"
    assert {v for v, _, _ in windows.values()} == {version}, "each host runs the new version"
    started = {n: agent_started(n) for n in COLLECTORS}
    for n, (_, begin, end) in windows.items():
        assert begin <= started[n] <= end, f"{n}'s agent did not restart during its own turn ({begin}..{end})"
    batches = [COLLECTORS[i : i + serial] for i in range(0, len(COLLECTORS), serial)]
    for ahead, behind in itertools.pairwise(batches):
        done = max(windows[n][2] for n in ahead)
        assert all(windows[n][1] >= done and started[n] >= done for n in behind), (
            f"batch {behind} started before batch {ahead} had finished: {windows}, {started}"
        )
    events = sorted([(b, 1) for _, b, _ in windows.values()] + [(e, -1) for _, _, e in windows.values()])
    at_once = max(sum(d for _, d in events[: i + 1]) for i in range(len(events)))
    assert at_once <= serial, f"{at_once} hosts were upgrading at once, the batch size is {serial}"

    counts = {n: int(wait_until(lambda n=n: podman("exec", n, "cat", "/tmp/upg-count").stdout.strip() if
                                podman("exec", n, "test", "-f", "/tmp/upg-count", check=False).returncode == 0
                                else None, 10, f"the writer on {n} to stop", interval=0.5)) for n in NODES}  # fmt: skip
    reader = connect("iact_reader", secret("cassandra_reader_password"))
    query = SimpleStatement(
        "SELECT host, source, message FROM logging.infrastructure_logs WHERE day = %s AND program = 'upgtest'",
        fetch_size=5000,
    )

    # From syslog: every line rsyslog wrote to the file (journald drops lines it cannot hand to a
    # lagging rsyslog; Writers.in_syslog says more); from the journal: every line written.
    in_file = Writers(run, program="upgtest")

    def stored():
        seen = Counter()
        for r in reader.execute(query, (datetime.now(UTC).date(),)):
            if f"run={run} " in r.message:
                seen[(r.host, r.source, r.message)] += 1
        want = {(n, "journal"): counts[n] for n in NODES} | {(n, "syslog"): in_file.in_syslog(n) for n in NODES}
        complete = all(sum(1 for (h, s, _m) in seen if (h, s) == key) == n for key, n in want.items())
        settled = all(in_file.in_syslog(n) == want[(n, "syslog")] for n in NODES)  # rsyslog done writing
        return seen if complete and settled else None

    seen = wait_until(stored, 60, "every line written during the upgrade, from both the journal and syslog", 2)
    for n in NODES:
        assert counts[n] * 0.95 <= in_file.in_syslog(n) <= counts[n], f"{n}: rsyslog lost more than 5 % of the lines"
    assert max(seen.values()) == 1, "no line stored twice"
