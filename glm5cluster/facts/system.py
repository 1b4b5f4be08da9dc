"""Operating system, kernel, architecture, Python, systemd, memlock and /dev/shm facts."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact

DEBIAN_IDS = {"debian", "ubuntu"}
RHEL_IDS = {"rhel", "centos", "rocky", "almalinux", "ol", "amzn", "sberlinux"}


@dataclass(frozen=True)
class OsInfo:
    id: str
    version_id: str
    family: str  # "debian" | "rhel" | "other"
    pretty_name: str = ""
    id_like: tuple[str, ...] = ()
    kernel: str = ""
    arch: str = ""


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release``: shell-style ``KEY=value`` lines (quoted or not); comments skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if not m:
            continue
        try:
            words = shlex.split(m.group(2))
        except ValueError:
            words = [m.group(2).strip("\"'")]
        out[m.group(1)] = " ".join(words)
    return out


def os_family(os_id: str, id_like: tuple[str, ...]) -> str:
    names = {os_id, *id_like}
    if names & DEBIAN_IDS:
        return "debian"
    if names & (RHEL_IDS | {"fedora"}) and os_id != "fedora":
        return "rhel"
    return "other"


def parse_os(result: CommandResult) -> OsInfo:
    lines = result.stdout.splitlines()
    kernel = lines[0].strip() if lines else ""
    arch = lines[1].strip() if len(lines) > 1 else ""
    rel = parse_os_release("\n".join(lines[2:]))
    os_id = rel.get("ID", "linux").lower()
    id_like = tuple(rel.get("ID_LIKE", "").lower().split())
    return OsInfo(
        id=os_id,
        version_id=rel.get("VERSION_ID", ""),
        family=os_family(os_id, id_like),
        pretty_name=rel.get("PRETTY_NAME", ""),
        id_like=id_like,
        kernel=kernel,
        arch=arch,
    )


class OsFact(Fact[OsInfo]):
    """Kernel (``uname -r``), architecture (``uname -m``) and ``/etc/os-release``."""

    name = "os"

    def command(self) -> Shell:
        return Shell.sh("uname -r; uname -m; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release")

    def parse(self, result: CommandResult) -> OsInfo:
        return parse_os(result)


@dataclass(frozen=True)
class PythonInfo:
    present: bool
    version: str | None = None  # "3.11.2"
    venv: bool = False  # ``venv`` and ``ensurepip`` importable (Debian: package python3-venv)


PYTHON_SCRIPT = (
    "command -v python3 >/dev/null 2>&1 || exit 127\n"
    "python3 -I -S -c 'import sys, importlib.util as u\n"
    "print(\"%d.%d.%d\" % sys.version_info[:3])\n"
    "print(\"venv=yes\" if u.find_spec(\"ensurepip\") and u.find_spec(\"venv\") else \"venv=no\")'"
)


def parse_python(result: CommandResult) -> PythonInfo:
    if result.exit_code == 127 or not result.ok:
        return PythonInfo(present=False)
    m = re.search(r"^(\d+\.\d+\.\d+)$", result.stdout, re.M)
    return PythonInfo(present=True, version=m.group(1) if m else None, venv="venv=yes" in result.stdout)


class PythonFact(Fact[PythonInfo]):
    name = "python"

    def command(self) -> Shell:
        return Shell.sh(PYTHON_SCRIPT)

    def parse(self, result: CommandResult) -> PythonInfo:
        return parse_python(result)


@dataclass(frozen=True)
class SystemdInfo:
    present: bool  # systemd is PID 1 and systemctl answers
    state: str  # is-system-running: running, degraded, starting, ... ; "absent" / "offline"


def parse_systemd(result: CommandResult) -> SystemdInfo:
    text = result.stdout.strip()
    if result.exit_code == 127:
        return SystemdInfo(False, "absent")
    if "not been booted with systemd" in result.stderr or text == "offline":
        return SystemdInfo(False, "offline")
    state = text.splitlines()[-1].strip() if text else "unknown"
    return SystemdInfo(True, state)


class SystemdFact(Fact[SystemdInfo]):
    """``systemctl is-system-running`` (exits non-zero when degraded: that is a value)."""

    name = "systemd"

    def command(self) -> Shell:
        return Shell.sh("command -v systemctl >/dev/null 2>&1 || exit 127\nsystemctl is-system-running")

    def parse(self, result: CommandResult) -> SystemdInfo:
        return parse_systemd(result)


@dataclass(frozen=True)
class Memlock:
    unlimited: bool
    kib: int | None = None


def parse_memlock(result: CommandResult) -> Memlock:
    text = result.stdout.strip()
    if text == "unlimited":
        return Memlock(True)
    return Memlock(False, int(text) if text.isdigit() else None)


class MemlockFact(Fact[Memlock]):
    """``ulimit -l`` of a login shell (what a process started over SSH gets)."""

    name = "memlock"

    def command(self) -> Shell:
        return Shell.sh("ulimit -l")

    def parse(self, result: CommandResult) -> Memlock:
        return parse_memlock(result)


@dataclass(frozen=True)
class ShmInfo:
    present: bool
    size_bytes: int | None = None
    avail_bytes: int | None = None


def parse_shm(result: CommandResult) -> ShmInfo:
    rows = [ln.split() for ln in result.stdout.splitlines()[1:] if ln.strip()]
    if not result.ok or not rows or len(rows[0]) < 2 or not rows[0][0].isdigit():
        return ShmInfo(False)
    return ShmInfo(True, int(rows[0][0]), int(rows[0][1]))


class ShmFact(Fact[ShmInfo]):
    name = "shm"

    def command(self) -> Shell:
        return Shell.cmd("df", "-B1", "--output=size,avail", "/dev/shm")

    def parse(self, result: CommandResult) -> ShmInfo:
        return parse_shm(result)
