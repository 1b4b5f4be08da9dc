"""A systemd unit's state (``systemctl show``) plus its unit file under /etc/systemd/system."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact, FactError
from glm5cluster.facts.paths import PathState, parse_path_state, path_state_script

UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@\\-]+\.(service|socket|timer|target|mount|path)$")
UNIT_DIR = "/etc/systemd/system"
PROPS = ("LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath", "NeedDaemonReload")


@dataclass(frozen=True)
class UnitState:
    name: str
    load_state: str  # loaded | not-found | masked | error
    active_state: str  # active | inactive | failed | activating | ...
    sub_state: str
    unit_file_state: str  # enabled | disabled | static | masked | "" (unknown unit)
    fragment_path: str
    need_daemon_reload: bool
    file: PathState  # the unit file the toolkit manages: /etc/systemd/system/NAME

    @property
    def active(self) -> bool:
        return self.active_state == "active"

    @property
    def enabled(self) -> bool:
        return self.unit_file_state in ("enabled", "enabled-runtime", "alias")


FILE_MARK = "@@glm5cluster:unit-file@@"


def unit_file_path(unit: str) -> str:
    return f"{UNIT_DIR}/{unit}"


def unit_state_script(unit: str, expect_sha256: str | None = None) -> str:
    return (
        f"systemctl show -p {','.join(PROPS)} -- {shlex.quote(unit)} || exit 3\n"
        f"echo '{FILE_MARK}'\n"
        + path_state_script(unit_file_path(unit), expect_sha256)
    )


def parse_unit_state(unit: str, result: CommandResult) -> UnitState:
    if not result.ok:
        raise FactError("unit_state", f"cannot read the state of {unit}: {result.tail(3) or result.exit_code}")
    show, _, file_part = result.stdout.partition(FILE_MARK + "\n")
    v: dict[str, str] = {}
    for line in show.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            v[key.strip()] = value.strip()
    file_result = CommandResult(result.command, 0, file_part)
    return UnitState(
        name=unit,
        load_state=v.get("LoadState", ""),
        active_state=v.get("ActiveState", ""),
        sub_state=v.get("SubState", ""),
        unit_file_state=v.get("UnitFileState", ""),
        fragment_path=v.get("FragmentPath", ""),
        need_daemon_reload=v.get("NeedDaemonReload", "no") == "yes",
        file=parse_path_state(unit_file_path(unit), file_result),
    )


class UnitStateFact(Fact[UnitState]):
    """``systemctl show`` of a unit plus the state (and, when it differs from ``expect_sha256``,
    the content) of its file under /etc/systemd/system."""

    name = "unit_state"

    def __init__(self, unit: str, expect_sha256: str | None = None) -> None:
        if not UNIT_RE.match(unit):
            raise ValueError(f"not a systemd unit name: {unit!r}")
        self.unit = unit
        self.expect_sha256 = expect_sha256

    def command(self) -> Shell:
        return Shell.sh(unit_state_script(self.unit, self.expect_sha256), sudo=True)

    def parse(self, result: CommandResult) -> UnitState:
        return parse_unit_state(self.unit, result)
