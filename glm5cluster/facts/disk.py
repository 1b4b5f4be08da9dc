"""Free space at a path, which need not exist yet (the nearest existing parent is measured)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact


@dataclass(frozen=True)
class DiskFree:
    path: str  # the path asked about
    checked: str | None  # the nearest existing path (itself or a parent) that was measured
    avail_bytes: int | None  # None: could not be measured (see ``error``)
    mount: str | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.avail_bytes is not None


def disk_free_script(path: str) -> str:
    return (
        f"p={shlex.quote(path)}\n"
        'while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname -- "$p"); done\n'
        'printf "checked=%s\\n" "$p"\n'
        'df -B1 --output=avail,target -- "$p"'
    )


def parse_disk_free(path: str, result: CommandResult) -> DiskFree:
    lines = result.stdout.splitlines()
    checked = lines[0][len("checked="):] if lines and lines[0].startswith("checked=") else None
    rows = [ln for ln in lines[2:] if ln.strip()]  # after checked= and the df header
    if not result.ok or not rows:
        err = result.stderr.strip().splitlines()[-3:]
        return DiskFree(path, checked, None, error=" | ".join(err) or f"df exited {result.exit_code}")
    avail, _, mount = rows[0].strip().partition(" ")
    if not avail.isdigit():
        return DiskFree(path, checked, None, error=f"unreadable df output: {rows[0]!r}")
    return DiskFree(path, checked, int(avail), mount.strip() or None)


class DiskFreeFact(Fact[DiskFree]):
    """``df -B1 --output=avail,target`` at ``path`` or its nearest existing parent."""

    name = "disk_free"

    def __init__(self, path: str) -> None:
        if not path.startswith("/") or "\n" in path or "\x00" in path:
            raise ValueError(f"disk_free needs an absolute path without newlines, got {path!r}")
        self.path = path

    def command(self) -> Shell:
        return Shell.sh(disk_free_script(self.path))

    def parse(self, result: CommandResult) -> DiskFree:
        return parse_disk_free(self.path, result)


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB' (for messages)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
