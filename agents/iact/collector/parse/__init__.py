"""Parsers: bytes of one line (or one journal entry) -> Parsed. Pure functions, no I/O."""

from iact.collector.parse.model import Parsed, severity_name
from iact.collector.parse.syslog import parse_line

__all__ = ["Parsed", "parse_line", "severity_name"]
