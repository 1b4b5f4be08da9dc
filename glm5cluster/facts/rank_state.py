"""One rank's (or any service's) process as its runtime reports it: ``RankState``.

Both runtimes parse into this one record: the unit runtime from ``systemctl show`` properties
plus the host clock (monotonic timestamps turned into wall time, so no time zone is involved),
the container runtime from ``docker inspect``'s ``.State`` JSON. Parsers are pure and tested on
captured outputs in ``tests/facts/replica/``.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

UP_STATES = ("active", "activating", "reloading")


@dataclass(frozen=True)
class Clock:
    """A host's clock: wall time and seconds since boot, read in the same command."""

    wall: float
    uptime: float

    def wall_of_monotonic(self, usec: int) -> float | None:
        """Wall time of a systemd ``*TimestampMonotonic`` value (0 means never)."""
        return None if usec <= 0 else self.wall - (self.uptime - usec / 1e6)


def parse_clock(text: str) -> Clock | None:
    """``cat /proc/uptime; date +%s.%N`` output."""
    words = text.split()
    try:
        return Clock(wall=float(words[2]), uptime=float(words[0]))
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class RankState:
    """A service's process now. ``state``: active | activating | deactivating | reloading |
    inactive | failed | absent (no unit/container) | unreachable (the host did not answer)."""

    state: str
    detail: str = ""  # systemd sub-state or container status
    started_at: float | None = None  # wall time the current (or last) run started
    exited_at: float | None = None  # wall time it stopped (None while it runs)
    exit_code: int | None = None
    signal: int | None = None
    oom_killed: bool = False
    identity: str = ""  # systemd InvocationID, or the container id
    digest: str = ""  # config digest the running instance was started with
    now: float | None = None  # the host's clock when read
    target: str = ""  # unit or container name
    kind: str = ""  # "unit" | "container"

    @property
    def exists(self) -> bool:
        return self.state not in ("absent", "unreachable")

    @property
    def up(self) -> bool:
        return self.state in UP_STATES

    @property
    def running(self) -> bool:
        return self.up

    @property
    def since(self) -> float | None:
        """When it entered its current state (start while up, stop otherwise)."""
        return self.started_at if self.up else (self.exited_at or self.started_at)

    def current(self, digest: str) -> bool:
        return self.running and bool(digest) and self.digest == digest

    def how_it_ended(self) -> str:
        if self.oom_killed:
            return "killed by the kernel OOM killer"
        if self.signal:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by signal {self.signal} ({name})"
        if self.exit_code is not None:
            return f"exited with code {self.exit_code}"
        return self.state


ABSENT = RankState("absent", "not found")


def parse_props(text: str) -> dict[str, str]:
    """``key=value`` lines (``systemctl show``) as a mapping; the first of a repeated key wins."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() not in props:
            props[key.strip()] = value.strip()
    return props


def _int(value: str | None) -> int:
    try:
        return int(value or "0")
    except ValueError:
        return 0


def unit_state(props: Mapping[str, str], clock: Clock | None, stamp: str = "", target: str = "") -> RankState:
    """A unit from its ``systemctl show`` properties; ``stamp`` is ``<digest> <InvocationID>``
    written when the launch started it (it counts only for that invocation)."""
    load, active = props.get("LoadState", ""), props.get("ActiveState", "")
    if load in ("not-found", "") and active in ("inactive", ""):
        return RankState("absent", "no unit", now=clock.wall if clock else None, target=target, kind="unit")
    up = active in UP_STATES
    wall = clock.wall_of_monotonic if clock else (lambda _usec: None)
    started = wall(_int(props.get("ExecMainStartTimestampMonotonic") or props.get("ActiveEnterTimestampMonotonic")))
    exited = None if up else wall(_int(props.get("ExecMainExitTimestampMonotonic")
                                        or props.get("InactiveEnterTimestampMonotonic")))
    code = props.get("ExecMainCode", "")  # 1 exited, 2 killed, 3 dumped (siginfo CLD_*)
    status = _int(props.get("ExecMainStatus"))
    exit_code = sig = None
    if not up and code == "1":
        exit_code = status
    elif not up and code in ("2", "3"):
        sig = status
    ident = props.get("InvocationID", "")
    stamp_digest, _, stamp_id = stamp.strip().partition(" ")
    digest = stamp_digest if ident and stamp_id == ident else ""
    return RankState(active or "unknown", props.get("SubState", ""), started, exited, exit_code, sig,
                     False, ident, digest, clock.wall if clock else None, target, "unit")


def iso_time(ts: str) -> float | None:
    """Docker's RFC 3339 nano timestamps; its zero time means never."""
    if not ts or ts.startswith("0001-"):
        return None
    text = ts.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def container_state(state_json: str, found: bool = True, *, identity: str = "", digest: str = "",
                    now: float | None = None, target: str = "") -> RankState:
    """A container from ``docker inspect --format '{{json .State}}'`` (``found`` False: no such container)."""
    if not found:
        return RankState("absent", "no container", now=now, target=target, kind="container")
    try:
        st = json.loads(state_json.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return RankState("absent", "unreadable docker state", now=now, target=target, kind="container")
    status = str(st.get("Status", ""))
    started = iso_time(str(st.get("StartedAt", "")))
    base = RankState("inactive", status, started, identity=identity, digest=digest, now=now, target=target,
                     kind="container")
    if st.get("Running") or status in ("running", "restarting"):
        return replace(base, state="active")
    if status == "created":
        return replace(base, started_at=None)
    code = int(st.get("ExitCode") or 0)
    sig = code - 128 if code > 128 else None
    return replace(base, state="failed" if code else "inactive", exited_at=iso_time(str(st.get("FinishedAt", ""))),
                   exit_code=None if sig else code, signal=sig, oom_killed=bool(st.get("OOMKilled")))
