"""The README's sizing table is bench/sizing.py's output for the committed measurements, never typed by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- sizing: python bench/sizing.py --markdown -->", "<!-- /sizing -->"


def test_the_readme_table_is_what_sizing_py_computes_from_the_measurements():
    text = (ROOT / "README.md").read_text()
    assert BEGIN in text and END in text, "README.md lost its sizing markers"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    computed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sizing.py"), "--markdown"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert shown == computed, "regenerate it: python bench/sizing.py --markdown, pasted between the markers"


def test_more_hosts_never_need_fewer_nodes_or_less_disk():
    sys.path.insert(0, str(ROOT / "bench"))
    from sizing import Measured, plan

    m = Measured(writes_per_core=10_000, infra_bytes=130, app_bytes=250, source="test")
    plans = [plan(m, h, 2, 20, 1, 90, 3, 8, 1000) for h in (10, 100, 1000, 10_000, 100_000)]
    assert [p.nodes for p in plans] == sorted(p.nodes for p in plans) and plans[0].nodes == 3
    assert all(p.nodes >= max(p.nodes_for_writes, p.nodes_for_disk) for p in plans)
    big = plans[-1]
    assert big.disk_per_node_gb <= 1000 and big.peak_rows == 100_000 * (20 + 10)
