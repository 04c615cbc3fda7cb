"""Host health every N seconds (psutil), stored as structured infrastructure log entries.

Putting these next to the logs lets the dashboard show host health without another tool.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime

import psutil

from iact.collector.sources.records import MetricSample


def sample(disks: Sequence[str]) -> MetricSample:
    """One reading; cpu_percent is since the previous call (the first call primes it)."""
    cpu = psutil.cpu_percent(interval=None)
    mem = psutil.virtual_memory()
    swap = psutil.swap_memory()
    load1, load5, load15 = os.getloadavg()
    fields = {
        "cpu_percent": f"{cpu:.1f}",
        "mem_percent": f"{mem.percent:.1f}",
        "mem_available_bytes": str(mem.available),
        "swap_percent": f"{swap.percent:.1f}",
        "load1": f"{load1:.2f}",
        "load5": f"{load5:.2f}",
        "load15": f"{load15:.2f}",
        "cpu_count": str(psutil.cpu_count() or 0),
    }
    disk_text = []
    for path in disks:
        try:
            usage = psutil.disk_usage(path)
        except OSError:
            continue
        fields[f"disk_percent:{path}"] = f"{usage.percent:.1f}"
        fields[f"disk_free_bytes:{path}"] = str(usage.free)
        disk_text.append(f"{path} {usage.percent:.1f}%")
    message = f"cpu {cpu:.1f}% mem {mem.percent:.1f}% load {load1:.2f} {load5:.2f} {load15:.2f}" + (
        f" disk {', '.join(disk_text)}" if disk_text else ""
    )
    return MetricSample(ts=datetime.now(UTC), message=message, fields=fields)
