"""The systemd_unit task against canned unit states."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from glm5cluster.commands import Shell, Upload
from glm5cluster.facts.paths import PathState
from glm5cluster.facts.units import UnitState, UnitStateFact
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp
from glm5cluster.tasks.registry import check_params
from glm5cluster.tasks.systemd import SystemdUnitParams, SystemdUnitTask

CTX = HostContext(node=None)
NAME = "glm5-demo-r0.service"
PATH = f"/etc/systemd/system/{NAME}"
UNIT = "[Unit]\nDescription=demo\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"


def state(content: str | None = UNIT, active: str = "active", file_state: str = "enabled",
          reload: bool = False, load: str = "loaded", old: bytes | None = None) -> UnitState:
    if content is None:
        f = PathState(PATH, False)
    else:
        data = content.encode()
        f = PathState(PATH, True, "regular file", 0o644, "root", "root", len(data),
                      hashlib.sha256(data).hexdigest(), old)
    return UnitState(NAME, load, active, "running" if active == "active" else "dead", file_state,
                     PATH if content else "", reload, f)


def plan(params: SystemdUnitParams, st: UnitState) -> object:
    task = SystemdUnitTask()
    facts = task.facts(params, CTX)
    assert isinstance(facts["unit"], UnitStateFact)
    return task.plan(params, CTX, {"unit": st})


def lines(out: object) -> list[str]:
    assert isinstance(out, Change)
    return [c.command_line() if isinstance(c, Shell) else f"upload {c.dest}" for c in out.commands]


def test_converged_is_noop() -> None:
    out = plan(SystemdUnitParams(name=NAME, content=UNIT), state())
    assert isinstance(out, NoOp) and "active" in out.reason


def test_new_unit_written_reloaded_enabled_started() -> None:
    out = plan(SystemdUnitParams(name=NAME, content=UNIT),
               state(content=None, active="inactive", file_state="", load="not-found"))
    assert lines(out) == [f"upload {PATH}", "systemctl daemon-reload", f"systemctl enable -- {NAME}",
                          f"systemctl start -- {NAME}"]
    assert isinstance(out, Change)
    up = out.commands[0]
    assert isinstance(up, Upload) and up.mode == 0o644 and up.owner == "root"
    assert out.diff is not None and "+ExecStart=/bin/sleep infinity" in out.diff


def test_changed_content_of_running_unit_reloads_and_restarts() -> None:
    old = UNIT.replace("infinity", "1000")
    out = plan(SystemdUnitParams(name=NAME, content=UNIT), state(content=old, old=old.encode()))
    assert lines(out) == [f"upload {PATH}", "systemctl daemon-reload", f"systemctl restart -- {NAME}"]
    assert isinstance(out, Change) and out.diff and "-ExecStart=/bin/sleep 1000" in out.diff


def test_no_daemon_reload_without_a_file_change() -> None:
    out = plan(SystemdUnitParams(name=NAME, content=UNIT), state(active="inactive"))
    assert lines(out) == [f"systemctl start -- {NAME}"]
    out = plan(SystemdUnitParams(name=NAME, content=UNIT), state(file_state="disabled"))
    assert lines(out) == [f"systemctl enable -- {NAME}"]


def test_daemon_reload_when_systemd_asks() -> None:
    out = plan(SystemdUnitParams(name=NAME, content=UNIT), state(reload=True))
    assert lines(out) == ["systemctl daemon-reload"]


def test_stopped_disabled_restarted() -> None:
    out = plan(SystemdUnitParams(name=NAME, content=UNIT, enabled=False, state="stopped"), state())
    assert lines(out) == [f"systemctl disable -- {NAME}", f"systemctl stop -- {NAME}"]
    out = plan(SystemdUnitParams(name=NAME, content=UNIT, state="restarted"), state())
    assert lines(out) == [f"systemctl restart -- {NAME}"]
    out = plan(SystemdUnitParams(name=NAME, content=UNIT, enabled=False, state="stopped"),
               state(active="inactive", file_state="disabled"))
    assert isinstance(out, NoOp)


def test_existing_unit_without_content() -> None:
    out = plan(SystemdUnitParams(name="docker.service"), state(active="inactive"))
    assert lines(out) == ["systemctl start -- glm5-demo-r0.service"] or isinstance(out, Change)
    out = plan(SystemdUnitParams(name=NAME), state(content=None, load="not-found", active="inactive"))
    assert isinstance(out, Fail) and "not found" in out.message


def test_masked_unit_fails() -> None:
    out = plan(SystemdUnitParams(name=NAME, content=UNIT), state(load="masked", file_state="masked"))
    assert isinstance(out, Fail) and "masked" in out.message


@pytest.mark.parametrize("name", ["x", "a b.service", "x.service; reboot", "$(id).service", "../x.service"])
def test_bad_unit_names_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        check_params("systemd_unit", {"name": name, "content": ""})
    with pytest.raises(ValueError):
        UnitStateFact(name)
