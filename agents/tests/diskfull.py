"""A filesystem made full on purpose: what the fault tests use to take a spool's disk away."""

from __future__ import annotations

from pathlib import Path


def fill(directory: Path) -> Path:
    """Write a ballast file until the filesystem has no block left; delete it to free the space."""
    ballast = directory / "ballast"
    try:
        f = open(ballast, "ab", buffering=0)  # noqa: SIM115 - closed below
    except OSError:  # not even room for the file: already full
        return ballast
    with f:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                continue
    return ballast
