"""The ``systemd_unit`` task and its pure planner ``plan_unit`` (reused by deployment tasks)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import StringConstraints

from glm5cluster.commands import Command, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.units import UNIT_RE, UnitState, UnitStateFact
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Outcome, Params, Task
from glm5cluster.tasks.files import content_diff, sha256_hex, write_commands

UnitName = Annotated[str, StringConstraints(pattern=UNIT_RE.pattern)]
UnitWanted = Literal["started", "stopped", "restarted"]
UNIT_MODE = 0o644
# Unit file states that cannot (or need not) be enabled with `systemctl enable`.
NOT_ENABLEABLE = {"static", "generated", "transient", "indirect"}


def unit_facts(name: str, content: str | None) -> dict[str, Fact[Any]]:
    return {"unit": UnitStateFact(name, expect_sha256=sha256_hex(content.encode()) if content is not None else None)}


def _ctl(verb: str, name: str) -> Shell:
    return Shell.sh(f"systemctl {verb} -- {shlex.quote(name)}", sudo=True, description=f"systemctl {verb} {name}")


def plan_unit(name: str, content: str | None, enabled: bool | None, state: UnitWanted | None,
              unit: UnitState) -> Outcome:
    """Write the unit file when it differs, ``daemon-reload`` only then (or when systemd asks for
    it), enable/disable, start/stop; a running unit whose file changed is restarted."""
    commands: list[Command] = []
    notes: list[str] = []
    diff: str | None = None
    changed_file = False
    if content is not None:
        data = content.encode()
        f = unit.file
        if f.exists and not f.is_file:
            return Fail(f"{f.path} is a {f.type}, not a unit file", hint="remove it by hand")
        if not f.exists or f.sha256 != sha256_hex(data) or f.mode != UNIT_MODE or f.owner != "root":
            changed_file = not f.exists or f.sha256 != sha256_hex(data)
            commands += write_commands(f.path, data, UNIT_MODE, "root", "root")
            notes.append(("create " if not f.exists else "update ") + f.path if changed_file
                         else f"fix mode/owner of {f.path}")
            if changed_file:
                diff = content_diff(f.path, f.content, data, secret=False, existed=f.exists)
    elif unit.load_state == "not-found":
        return Fail(f"unit {name} not found and no content given", hint="give content, or install the unit first")
    if changed_file or unit.need_daemon_reload:
        commands.append(Shell.sh("systemctl daemon-reload", sudo=True, description="systemctl daemon-reload"))
        if not changed_file:
            notes.append("daemon-reload (systemd asked for it)")
    if unit.load_state == "masked" and (enabled or state in ("started", "restarted")):
        return Fail(f"unit {name} is masked", hint=f"systemctl unmask {name}")
    if enabled is True and not unit.enabled and unit.unit_file_state not in NOT_ENABLEABLE:
        commands.append(_ctl("enable", name))
        notes.append("enable")
    elif enabled is False and unit.enabled:
        commands.append(_ctl("disable", name))
        notes.append("disable")
    if state == "restarted" or (state == "started" and unit.active and changed_file):
        commands.append(_ctl("restart", name))
        notes.append("restart" + (" (unit file changed)" if state == "started" else ""))
    elif state == "started" and not unit.active:
        commands.append(_ctl("start", name))
        notes.append(f"start (was {unit.active_state or 'unknown'})")
    elif state == "stopped" and unit.active_state not in ("inactive", "failed", ""):
        commands.append(_ctl("stop", name))
        notes.append("stop")
    if not commands:
        bits = [unit.active_state or "unknown", unit.unit_file_state or "unknown"]
        return NoOp(f"{name} up to date ({', '.join(bits)})")
    return Change(commands, f"{name}: " + ", ".join(notes), diff)


class SystemdUnitParams(Params):
    name: UnitName
    content: str | None = None  # None: manage an existing unit (enable/start) without writing it
    enabled: bool | None = True  # None: leave as is
    state: UnitWanted | None = "started"  # None: leave as is


class SystemdUnitTask(Task[SystemdUnitParams]):
    """A unit file under /etc/systemd/system (0644 root), enabled and running as asked."""

    name = "systemd_unit"
    Params = SystemdUnitParams

    def facts(self, params: SystemdUnitParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        return unit_facts(params.name, params.content)

    def plan(self, params: SystemdUnitParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        return plan_unit(params.name, params.content, params.enabled, params.state, facts["unit"])
