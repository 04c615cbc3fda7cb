"""Syslog-shaped lines: what Debian's rsyslog writes, RFC 3164, RFC 5424 and kernel lines.

Shapes handled (see tests/corpus for real examples):
- rsyslog traditional file format: `Nov 23 03:00:01 host prog[pid]: msg` (Debian 12's default);
- rsyslog high-precision format: `2026-11-23T03:00:01.123456+01:00 host prog[pid]: msg` (Debian 13);
- either of those with an RFC 3164 `<PRI>` in front (network syslog);
- RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD...] MSG`;
- kernel lines, in kern.log (`kernel: [ 12.345678] msg`) or raw from dmesg (`[ 12.345678] msg`).
Anything else becomes a raw entry with the whole line as message and severity unknown.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

from iact.collector.parse.model import Parsed, facility_name
from iact.collector.zone import host_zone_name, zone

_TRADITIONAL = re.compile(r"(?:<(\d{1,3})>)?([A-Z][a-z]{2}) ([ \d]?\d) (\d\d:\d\d:\d\d) (\S+) (.*)", re.S)
_ISO = re.compile(r"(?:<(\d{1,3})>)?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)? (\S+) (.*)", re.S)
_RFC5424 = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?", re.S)
_RFC5424_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_SD_ELEMENT = re.compile(r"\[([^\s\]=]+)((?:\s+[^\s=\]]+=\"(?:[^\"\\]|\\.)*\")*)\]")
_SD_PARAM = re.compile(r"([^\s=\]]+)=\"((?:[^\"\\]|\\.)*)\"")
_TAG = re.compile(r"([^\s:\[\]]{1,128})(?:\[([0-9]{1,10})\])?: ?(.*)", re.S)
_KERNEL_STAMP = re.compile(r"\[\s*(\d+\.\d+)\] ?(.*)", re.S)
# Lines without a <PRI> carry no severity; these words make a line an error for alerting purposes.
_ERRORISH = re.compile(r"\b(?:error|errors|failed|failure|fatal|panic|segfault|denied|critical)\b", re.I)
_MONTHS = {
    m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)
}

LocalStamp = tuple[int, int, int, int, int]  # month, day, hour, minute, second: no year, no zone
Resolver = Callable[[str, str, str], "datetime | None"]  # month, day, clock as written


def local_stamp(month: str, day: str, clock: str) -> LocalStamp | None:
    """The parts of a traditional stamp, or None when they cannot be a date (30 Feb is left to the resolver)."""
    mon = _MONTHS.get(month)
    try:
        hh, mm, ss = (int(x) for x in clock.split(":"))
        d = int(day)
    except ValueError:
        return None
    if mon is None or not (1 <= d <= 31 and hh < 24 and mm < 60 and ss < 61):
        return None
    return mon, d, hh, mm, min(ss, 59)


def resolve_stamp(stamp: LocalStamp, zone: tzinfo, ref: datetime, follows: bool) -> datetime | None:
    """A local time without a year -> UTC, chosen relative to `ref` (UTC).

    follows=True: `ref` is the previous line's time, so the candidate nearest to it wins (a log
    goes forward; the year turns between Dec 31 and Jan 1). follows=False: `ref` is when the file
    was first seen, so the latest candidate at most 2 days after it wins (a file holds the past).
    Of the two readings of a repeated DST hour, the earlier is taken unless it would go back
    before `ref` while the later does not. Pure: the same arguments always give the same time.
    """
    mon, d, hh, mm, ss = stamp
    local_ref = ref.astimezone(zone)
    best: datetime | None = None
    for year in (local_ref.year - 1, local_ref.year, local_ref.year + 1):
        try:
            naive = datetime(year, mon, d, hh, mm, ss)
            early = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
            late = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        except (ValueError, OverflowError):  # 29 Feb in a common year, 31 Apr, years 0 and 10000
            continue
        cand = late if follows and early < ref <= late else early
        if follows:
            if best is None or abs(cand - ref) < abs(best - ref):
                best = cand
        elif cand <= ref + timedelta(days=2) and (best is None or cand > best):
            best = cand
    return best


_default: dict[tuple[str, str, str], datetime | None] = {}
_default_epoch: tuple[int, str] = (-1, "")


def _resolve_default(month: str, day: str, clock: str) -> datetime | None:
    """For callers without a file's context: against the current hour in the host's zone, cached.

    The row builder never comes here: it passes a resolver bound to the file's pinned zone and
    previous line, which is what keeps re-read lines on the same key.
    """
    global _default_epoch
    hour = int(time.time() // 3600)
    if _default_epoch[0] != hour:
        _default_epoch = (hour, host_zone_name())
        _default.clear()
    key = (month, day, clock)
    if key in _default:
        return _default[key]
    stamp = local_stamp(month, day, clock)
    ref = datetime.fromtimestamp(hour * 3600, UTC)
    result = resolve_stamp(stamp, zone(_default_epoch[1]), ref, follows=False) if stamp else None
    if len(_default) > 10_000:
        _default.clear()
    _default[key] = result
    return result


def _traditional_time(month: str, day: str, clock: str, now: datetime | None = None) -> datetime | None:
    """Local time without a year -> UTC, relative to now in the host's zone (for callers without context)."""
    stamp = local_stamp(month, day, clock)
    if stamp is None:
        return None
    return resolve_stamp(stamp, zone(host_zone_name()), now or datetime.now(UTC), follows=False)


def _iso_time(base: str, frac: str | None, zone: str | None) -> datetime | None:
    try:
        text = base + (frac[:7] if frac else "") + ("+00:00" if zone in (None, "Z") else zone)
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _apply_tag(p: Parsed, rest: str) -> None:
    m = _TAG.match(rest)
    if m is None:
        p.message = rest
        return
    p.program, pid, p.message = m.group(1), m.group(2), m.group(3)
    if pid:
        p.pid = int(pid)  # ASCII digits only; a value over int32 is dealt with by the row builder
    if p.program == "kernel":
        _apply_kernel_stamp(p, p.message)


def _apply_kernel_stamp(p: Parsed, text: str) -> None:
    m = _KERNEL_STAMP.match(text)
    if m:
        p.fields = {"kernel_uptime": m.group(1)}
        p.message = m.group(2)
    if p.facility is None:
        p.facility = "kern"


def _apply_pri(p: Parsed, pri: str | None) -> None:
    if pri is not None:
        code = int(pri)
        if code <= 191:
            p.facility, p.severity_code = facility_name(code >> 3), code & 7


def _infer_severity(p: Parsed) -> None:
    """Without a <PRI> the file line has no severity: call it err if it reads like one, else info."""
    if p.severity_code is None:
        p.severity_code = 3 if _ERRORISH.search(p.message) else 6
        p.severity_inferred = True


def _unescape_sd(value: str) -> str:
    return value.replace('\\"', '"').replace("\\]", "]").replace("\\\\", "\\")


def _rfc5424(m: re.Match[str]) -> Parsed:
    pri, stamp, host, app, procid, msgid, sd, msg = m.groups()
    p = Parsed(message=msg or "", format="rfc5424")
    _apply_pri(p, pri)
    if stamp != "-":
        iso = _RFC5424_TIME.fullmatch(stamp)
        p.ts = _iso_time(*iso.groups()) if iso else None
    p.hostname = None if host == "-" else host
    p.program = None if app == "-" else app
    if procid.isascii() and procid.isdigit():  # '²'.isdigit() is True, int('²') raises
        p.pid = int(procid)
    fields: dict[str, str] = {}
    if msgid != "-":
        fields["msgid"] = msgid
    if procid != "-" and p.pid is None:
        fields["procid"] = procid
    if sd != "-":
        for element in _SD_ELEMENT.finditer(sd):
            for name, value in _SD_PARAM.findall(element.group(2)):
                fields[f"{element.group(1)}.{name}"] = _unescape_sd(value)
    if p.message.startswith("\ufeff"):  # RFC 5424 marks UTF-8 messages with a BOM
        p.message = p.message[1:]
    p.fields = fields or None
    return p


def parse_line(text: str, fmt: str = "auto", facility: str | None = None, resolve: Resolver | None = None) -> Parsed:
    """Parse one line (without its newline). Never raises: the fallback is a raw entry.

    `resolve` turns a stamp without year or zone into UTC; the row builder passes one bound to the
    file's pinned zone and the previous line's time, so a line re-read later gets the same time.
    """
    if fmt == "raw":
        return Parsed(message=text, facility=facility)
    if fmt in ("auto", "syslog"):
        if text.startswith("<"):
            m5 = _RFC5424.match(text)
            if m5:
                return _rfc5424(m5)
        first = text[:1]
        if first.isdigit() or first == "<":
            m = _ISO.match(text)
            if m:
                pri, base, frac, zone, host, rest = m.groups()
                p = Parsed(
                    message=rest, ts=_iso_time(base, frac, zone), hostname=host, format="syslog", facility=facility
                )
                _apply_pri(p, pri)
                _apply_tag(p, rest)
                _infer_severity(p)
                return p
        m = _TRADITIONAL.match(text)
        if m:
            pri, month, day, clock, host, rest = m.groups()
            ts = (resolve or _resolve_default)(month, day.strip(), clock)
            p = Parsed(message=rest, ts=ts, hostname=host, format="syslog")
            p.facility = facility
            _apply_pri(p, pri)
            _apply_tag(p, rest)
            _infer_severity(p)
            return p
    if fmt in ("auto", "kernel") and text.startswith(("[", "<")):
        body, pri = text, None
        if text.startswith("<") and ">" in text[:5]:
            pri, body = text[1 : text.index(">")], text[text.index(">") + 1 :]
        if body.startswith("["):
            p = Parsed(message=body, program="kernel", format="kernel", facility="kern")
            _apply_kernel_stamp(p, body)
            if pri and pri.isascii() and pri.isdigit():
                p.severity_code = int(pri) & 7
            _infer_severity(p)
            return p
    return Parsed(message=text, facility=facility)
