"""Log lines of a rank as ``journalctl -o short-iso-precise`` or ``docker logs --timestamps``
print them: the timestamp (for merging ranks in time order) and the message.

Pure functions; tested in ``tests/facts/test_log_lines.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# 2026-01-05T10:00:00.123456+0000 node-1 glm5-lab-r0[1234]: message
_JOURNAL = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:?\d\d|Z)?) (\S+) ([^:]*?): ?(.*)$")
# 2026-01-05T10:00:00.123456789Z message
_DOCKER = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ?(.*)$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class LogLine:
    at: float | None  # seconds since the epoch (None: no timestamp on the line)
    text: str


def parse_timestamp(ts: str) -> float | None:
    text = ts.replace("Z", "+00:00")
    m = re.match(r"^(.*?)(\.\d+)?([+-]\d\d):?(\d\d)$", text)
    if m:
        frac = (m.group(2) or "")[:7]
        text = f"{m.group(1)}{frac}{m.group(3)}:{m.group(4)}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def parse_journal_line(line: str) -> LogLine:
    m = _JOURNAL.match(line)
    if not m:
        return LogLine(None, line)
    return LogLine(parse_timestamp(m.group(1)), m.group(4))


def parse_docker_line(line: str) -> LogLine:
    m = _DOCKER.match(line)
    if not m:
        return LogLine(None, line)
    return LogLine(parse_timestamp(m.group(1)), m.group(2))


def parse_lines(text: str, docker: bool) -> list[LogLine]:
    """Lines with timestamps; a line without one (a wrapped traceback) inherits its predecessor's."""
    out: list[LogLine] = []
    last: float | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("-- "):  # journalctl's "-- No entries --", boot marks
            continue
        got = parse_docker_line(line) if docker else parse_journal_line(line)
        if got.at is None:
            got = LogLine(last, got.text)
        last = got.at
        out.append(got)
    return out


def since_epoch(value: str, now: datetime | None = None) -> float:
    """``--since``: a duration back from now (``90s``, ``10m``, ``2h``, ``1d``), ``@EPOCH``, or an
    ISO date/time (``2026-01-05``, ``2026-01-05 10:00``, ``2026-01-05T10:00:00Z``; local time when
    no zone). Raises ``ValueError`` for anything else."""
    value = value.strip()
    now = now or datetime.now(UTC)
    m = _DURATION.match(value)
    if m:
        return (now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])).timestamp()
    if value.startswith("@"):
        return float(value[1:])
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # local time of this machine
    return parsed.timestamp()


def format_time(at: float | None) -> str:
    """UTC, millisecond precision: ``2026-01-05T10:00:00.123Z``."""
    if at is None:
        return "-" * 24
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
