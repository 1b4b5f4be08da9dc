"""facts.log_lines: timestamps of journalctl / docker log lines, and --since values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from glm5cluster.facts.log_lines import format_time, parse_lines, since_epoch

# journalctl -o short-iso-precise and docker logs --timestamps, as the lab's systemd 252 and
# docker 20.10 print them (glm5cluster/lab/sim's real log wording).
JOURNAL = """\
2026-11-29T21:40:47.123456+0000 node-1 glm5-lab-r0[812]: [2026-11-29 21:40:47] Init torch distributed begin.
2026-11-29T21:40:48.500000+0000 node-1 glm5-lab-r0[812]: Traceback (most recent call last):
-- Boot 1a2b --
2026-11-29T21:40:49.000001+0100 node-1 systemd[1]: glm5-lab-r0.service: Main process exited, code=killed, status=9/KILL
"""
DOCKER = """\
2026-11-29T21:40:47.123456789Z [2026-11-29 21:40:47] Load weight begin.
  File "x.py", line 1
2026-11-29T21:40:50.000000000Z The server is fired up and ready to roll!
"""


def test_journal_lines() -> None:
    lines = parse_lines(JOURNAL, docker=False)
    assert [ln.text[:20] for ln in lines] == ["[2026-11-29 21:40:47", "Traceback (most rece",
                                               "glm5-lab-r0.service:"]
    assert lines[0].at == datetime(2026, 11, 29, 21, 40, 47, 123456, UTC).timestamp()
    assert lines[2].at == datetime(2026, 11, 29, 20, 40, 49, 1, UTC).timestamp()  # +0100


def test_docker_lines_and_continuations_inherit_the_time() -> None:
    lines = parse_lines(DOCKER, docker=True)
    assert len(lines) == 3
    assert lines[1].text == '  File "x.py", line 1' and lines[1].at == lines[0].at
    assert format_time(lines[2].at) == "2026-11-29T21:40:50.000Z"


def test_since() -> None:
    now = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
    assert since_epoch("10m", now) == now.timestamp() - 600
    assert since_epoch("2h", now) == now.timestamp() - 7200
    assert since_epoch("@1700000000") == 1700000000.0
    assert since_epoch("2026-01-05T09:00:00Z") == now.timestamp() - 3600
    with pytest.raises(ValueError):
        since_epoch("yesterday-ish")
