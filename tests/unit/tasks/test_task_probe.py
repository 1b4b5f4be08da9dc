"""command/probe, facts and disk_free tasks, and the registry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.bundle import HostFacts, HostFactsFact
from glm5cluster.facts.command import CommandFact
from glm5cluster.facts.disk import DiskFree, DiskFreeFact
from glm5cluster.facts.docker import DockerInfo
from glm5cluster.facts.gpu_types import GpuInfo, GpuState, GpuStatus
from glm5cluster.facts.paths import PathState
from glm5cluster.facts.system import Memlock, OsInfo, PythonInfo, SystemdInfo
from glm5cluster.model.inventory import GpuKind
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Params
from glm5cluster.tasks.probe import (
    CommandParams,
    CommandTask,
    DiskFreeParams,
    DiskFreeTask,
    FactsParams,
    FactsTask,
)
from glm5cluster.tasks.registry import TASKS, check_params

CTX = HostContext(node=None)


def test_read_only_command_runs_as_a_fact_and_is_ok() -> None:
    p = CommandParams(cmd="nvidia-smi -L")
    facts = CommandTask().facts(p, CTX)
    assert set(facts) == {"run"} and isinstance(facts["run"], CommandFact)
    out = CommandTask().plan(p, CTX, {"run": CommandResult("x", 0, "GPU 0: NVIDIA H200\n")})
    assert isinstance(out, NoOp) and "NVIDIA H200" in out.reason
    bad = CommandTask().plan(p, CTX, {"run": CommandResult("x", 9, "", "boom\n")})
    assert isinstance(bad, Fail) and "exited 9" in bad.message and "boom" in bad.message


def test_changing_command_with_guards() -> None:
    p = CommandParams(cmd="touch /opt/x/done", changes=True, creates="/opt/x/done", unless="test -e /nope")
    facts = CommandTask().facts(p, CTX)
    assert set(facts) == {"creates", "unless"}
    done = CommandTask().plan(p, CTX, {"creates": PathState("/opt/x/done", True, "regular file"),
                                      "unless": CommandResult("x", 1)})
    assert isinstance(done, NoOp) and "exists" in done.reason
    guarded = CommandTask().plan(p, CTX, {"creates": PathState("/opt/x/done", False),
                                         "unless": CommandResult("x", 0)})
    assert isinstance(guarded, NoOp) and "unless" in guarded.reason
    run = CommandTask().plan(p, CTX, {"creates": PathState("/opt/x/done", False),
                                     "unless": CommandResult("x", 1)})
    assert isinstance(run, Change) and run.commands[0].command_line() == "touch /opt/x/done"


def test_expect_exit_for_changing_command() -> None:
    p = CommandParams(cmd="grep -q x /etc/y", changes=True, expect_exit=[0, 1])
    out = CommandTask().plan(p, CTX, {})
    assert isinstance(out, Change)
    cmd = out.commands[0]
    assert isinstance(cmd, Shell)
    import subprocess
    for script, rc in (("exit 1", 0), ("exit 0", 0), ("exit 2", 2)):
        line = cmd.command_line().replace("grep -q x /etc/y", script)
        assert subprocess.run(["sh", "-c", line], check=False).returncode == rc


def host_facts(avail: int = 10**12) -> HostFacts:
    gpus = tuple(GpuInfo(i, "NVIDIA H200", GpuKind.H200, 143771) for i in range(8))
    return HostFacts(
        os=OsInfo("ubuntu", "24.04", "debian", "Ubuntu 24.04.3 LTS", ("debian",), "6.8.0-79-generic", "x86_64"),
        python=PythonInfo(True, "3.12.3", True), docker=DockerInfo(True, "up", "27.3.1", "27.3.1"),
        systemd=SystemdInfo(True, "running"), memlock=Memlock(True),
        nvidia=GpuState(GpuStatus.OK, "nvidia", gpus, "570.133.20"),
        amd=GpuState(GpuStatus.NO_DRIVER, "amd"),
        disk={"/models": DiskFree("/models", "/models", avail, "/models")},
    )


def test_facts_task_reports_the_bundle() -> None:
    p = FactsParams(disk_paths=["/", "/models"])
    facts = FactsTask().facts(p, CTX)
    assert isinstance(facts["host"], HostFactsFact) and facts["host"].disk_paths == ("/", "/models")
    out = FactsTask().plan(p, CTX, {"host": host_facts()})
    assert isinstance(out, NoOp)
    assert "8x NVIDIA H200, driver 570.133.20" in out.reason and "Ubuntu 24.04.3 LTS" in out.reason


def test_disk_free_pass_and_fail_messages() -> None:
    p = DiskFreeParams(path="/models/glm5", min_free="800GiB")
    assert isinstance(DiskFreeTask().facts(p, CTX)["disk"], DiskFreeFact)
    enough = DiskFree("/models/glm5", "/models", 900 * 2**30, "/models")
    ok = DiskFreeTask().plan(p, CTX, {"disk": enough})
    assert isinstance(ok, NoOp) and "900.0 GiB free" in ok.reason
    short = DiskFree("/models/glm5", "/models", 100 * 2**30, "/models")
    bad = DiskFreeTask().plan(p, CTX, {"disk": short})
    assert isinstance(bad, Fail)
    assert "need 800.0 GiB" in bad.message and "free 100.0 GiB" in bad.message
    assert "/models/glm5 (measured at /models)" in bad.message
    err = DiskFreeTask().plan(p, CTX, {"disk": DiskFree("/models/glm5", "/", None, error="df: boom")})
    assert isinstance(err, Fail) and "df: boom" in err.message


def test_registry_lists_the_tasks_and_checks_params() -> None:
    assert {"facts", "command", "probe", "file", "directory", "systemd_unit", "disk_free"} <= set(TASKS)
    for name, task in TASKS.items():
        assert issubclass(task.Params, Params), name
    assert isinstance(check_params("disk_free", {"path": "/", "min_free": 10}), DiskFreeParams)
    with pytest.raises(ValidationError):
        check_params("disk_free", {"path": "/", "min_free": "lots"})
    with pytest.raises(ValidationError):
        check_params("command", {"cmd": "true", "creates": "relative"})
    with pytest.raises(KeyError):
        check_params("nope", {})
