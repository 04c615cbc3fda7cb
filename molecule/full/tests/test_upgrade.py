"""A rolling upgrade of the agents (playbooks/upgrade_agents.yml) while every node keeps logging."""

import re
import shutil
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from cassandra.query import SimpleStatement
from conftest import NODES, ROOT, playbook, secret, wait_until


def bumped_source(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the repository's package with the next version number."""
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
    return src, new


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True).stdout


def test_rolling_upgrade_loses_no_line(tmp_path, connect):
    src, version = bumped_source(tmp_path)
    run = uuid.uuid4().hex[:8]
    writer = (
        f"i=0; rm -f /tmp/upg-stop; while [ ! -f /tmp/upg-stop ]; do i=$((i+1)); "
        f"logger -t upgtest run={run} seq=$i; sleep 0.05; done; echo $i > /tmp/upg-count"
    )
    for node in NODES:
        podman("exec", "-d", node, "sh", "-c", writer)
    upgrade = playbook("playbooks/upgrade_agents.yml", "-e", f"collector_agent_source_dir={src}")
    for node in NODES:
        podman("exec", node, "touch", "/tmp/upg-stop")
    assert upgrade.returncode == 0, upgrade.stdout[-4000:] + upgrade.stderr[-2000:]
    assert upgrade.stdout.count(f"iact-collector {version}") >= len(NODES), "each host reports the new version"
    counts = {n: int(wait_until(lambda n=n: podman("exec", n, "cat", "/tmp/upg-count").strip() if
                                subprocess.run(["podman", "exec", n, "test", "-f", "/tmp/upg-count"]).returncode == 0
                                else None, 10, f"the writer on {n} to stop", interval=0.5)) for n in NODES}  # fmt: skip
    reader = connect("iact_reader", secret("cassandra_reader_password"))
    query = SimpleStatement(
        "SELECT host, source, message FROM logging.infrastructure_logs WHERE day = %s AND program = 'upgtest'",
        fetch_size=5000,
    )

    def stored():
        seen = Counter()
        for r in reader.execute(query, (datetime.now(UTC).date(),)):
            if f"run={run} " in r.message:
                seen[(r.host, r.source, r.message)] += 1
        complete = all(
            sum(1 for (h, s, _m) in seen if h == n and s == src_) == counts[n]
            for n in NODES
            for src_ in ("journal", "syslog")
        )
        return seen if complete else None

    seen = wait_until(stored, 60, "every line written during the upgrade, from both the journal and syslog", 2)
    assert max(seen.values()) == 1, "no line stored twice"
