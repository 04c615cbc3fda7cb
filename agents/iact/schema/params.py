"""The knobs of the schema and the values derived from them, validated once."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from iact.cassandra.settings import SettingsError

_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# Datacenter names go into a CQL string literal (the replication map): no quote can end it early.
_DC = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_COMPRESSORS = {"LZ4Compressor", "ZstdCompressor"}
# About 30 TWCS windows over the TTL: fewer, larger SSTables per window than daily windows.
TARGET_WINDOWS = 30


@dataclass(frozen=True)
class SchemaParams:
    """Keyspace name, replication per datacenter, TTL and compression of the log tables."""

    keyspace: str = "logging"
    replication: tuple[tuple[str, int], ...] = (("dc1", 3),)
    ttl_days: int = 90
    hint_window_hours: int = 3
    compression: str = "LZ4Compressor"

    def __post_init__(self) -> None:
        if not _IDENT.match(self.keyspace):
            raise SettingsError(f"keyspace {self.keyspace!r} is not a valid name: use lower-case letters, digits, _")
        if not self.replication:
            raise SettingsError("no replication given: pass --rf dc1:3")
        for dc, rf in self.replication:
            if not dc or rf < 1:
                raise SettingsError(f"replication {dc}:{rf} is invalid: pass --rf DC:N with N >= 1")
            if not _DC.fullmatch(dc):
                raise SettingsError(
                    f"datacenter name {dc!r} is invalid: pass --rf DC:N with a name of letters, digits, _ . -"
                )
        if self.ttl_days < 1:
            raise SettingsError(f"TTL of {self.ttl_days} days is invalid: pass --ttl-days 1 or more")
        if self.hint_window_hours < 1:
            raise SettingsError("the hint window must be at least 1 hour: pass --hint-window-hours")
        if self.compression not in _COMPRESSORS:
            raise SettingsError(f"compression {self.compression!r} is not one of {sorted(_COMPRESSORS)}")

    @property
    def ttl_seconds(self) -> int:
        """Default TTL of the log tables."""
        return self.ttl_days * 86400

    @property
    def twcs_window_days(self) -> int:
        """Window size so that the TTL spans about TARGET_WINDOWS windows (3 days for 90)."""
        return max(1, math.ceil(self.ttl_days / TARGET_WINDOWS))

    @property
    def gc_grace_seconds(self) -> int:
        """Insert-only TTL data needs little grace, but never less than the hint window."""
        return self.hint_window_hours * 3600

    @property
    def replication_literal(self) -> str:
        """The CQL map for NetworkTopologyStrategy."""
        dcs = ", ".join(f"'{dc}': {rf}" for dc, rf in self.replication)
        return f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"

    def template_values(self) -> dict[str, str]:
        """What the ${...} placeholders of cql/ files are replaced with."""
        return {
            "keyspace": self.keyspace,
            "replication": self.replication_literal,
            "ttl_seconds": str(self.ttl_seconds),
            "twcs_window_days": str(self.twcs_window_days),
            "gc_grace_seconds": str(self.gc_grace_seconds),
            "compression": self.compression,
        }


def parse_replication(text: str) -> tuple[tuple[str, int], ...]:
    """Parse 'dc1:3,dc2:3' into pairs, naming the bad part when it does not parse."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        dc, sep, rf = part.partition(":")
        if not sep or not rf.strip().isdigit():
            raise SettingsError(f"replication {part!r} is not DC:N (for example dc1:3)")
        pairs.append((dc.strip(), int(rf)))
    return tuple(pairs)
