"""Tasks that look rather than change: ``command``/``probe`` (with ``creates``/``unless``
guards), ``facts`` (the host-facts bundle, reported in the log) and ``disk_free``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import ByteSize, Field, StringConstraints

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.bundle import GpuVendor, HostFacts, HostFactsFact
from glm5cluster.facts.command import CommandFact
from glm5cluster.facts.disk import DiskFree, DiskFreeFact, human_bytes
from glm5cluster.facts.paths import PathState, PathStateFact
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Outcome, Params, Task
from glm5cluster.tasks.files import HostPath

Script = Annotated[str, StringConstraints(min_length=1, max_length=65536)]
OUTPUT_CHARS = 300


def _output(res: CommandResult) -> str:
    text = res.tail(3).replace("\n", " | ")
    return text if len(text) <= OUTPUT_CHARS else text[: OUTPUT_CHARS - 3] + "..."


class CommandParams(Params):
    cmd: Script  # POSIX sh, run with sh -c (through sudo for non-root users)
    changes: bool = False  # False: read-only, runs while facts are gathered (also under --check), reports ok
    creates: HostPath | None = None  # do nothing when this path exists
    unless: Script | None = None  # do nothing when this command exits 0
    expect_exit: list[int] = Field(default_factory=lambda: [0], min_length=1)
    timeout: Annotated[float, Field(gt=0, le=86400)] | None = None


class CommandTask(Task[CommandParams]):
    """Run a command. ``changes: false`` (the default) declares it read-only: it runs in the fact
    round trip and the step is "ok" with its output; a failing exit code fails the step.
    ``changes: true``: it runs as a change ("changed"), skipped when ``creates`` exists or
    ``unless`` succeeds. (With ``changes: false`` the guards only decide what is reported: the
    read-only command runs in the same round trip as they do.)"""

    name = "command"
    Params = CommandParams

    def facts(self, params: CommandParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        wanted: dict[str, Fact[Any]] = {}
        if params.creates is not None:
            wanted["creates"] = PathStateFact(params.creates)
        if params.unless is not None:
            wanted["unless"] = CommandFact(params.unless, timeout=params.timeout)
        if not params.changes:
            wanted["run"] = CommandFact(params.cmd, timeout=params.timeout)
        return wanted

    def plan(self, params: CommandParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        creates: PathState | None = facts.get("creates")
        if creates is not None and creates.exists:
            return NoOp(f"{params.creates} exists")
        unless: CommandResult | None = facts.get("unless")
        if unless is not None and unless.exit_code == 0:
            return NoOp("`unless` command succeeded" + (f": {_output(unless)}" if _output(unless) else ""))
        if not params.changes:
            res: CommandResult = facts["run"]
            if res.exit_code not in params.expect_exit:
                return Fail(f"command exited {res.exit_code}: {_output(res) or '(no output)'}",
                            hint="see the host log for the full output")
            return NoOp(f"exit {res.exit_code}" + (f": {_output(res)}" if _output(res) else ""))
        shell = Shell.sh(params.cmd, sudo=True, timeout=params.timeout)
        if params.expect_exit != [0]:
            codes = " ".join(str(c) for c in params.expect_exit)
            shell = Shell.sh(f"( {params.cmd}\n); rc=$?; for ok in {codes}; do [ $rc -eq $ok ] && exit 0; done; "
                             "exit $rc", sudo=True, timeout=params.timeout, description=params.cmd[:200])
        return Change([shell], f"run: {params.cmd.splitlines()[0][:120]}")


class FactsParams(Params):
    disk_paths: list[HostPath | Annotated[str, StringConstraints(pattern=r"^/$")]] = Field(
        default_factory=lambda: ["/"])
    gpu_vendor: GpuVendor = "auto"


class FactsTask(Task[FactsParams]):
    """Gather the host-facts bundle in one round trip and report it (always ok)."""

    name = "facts"
    Params = FactsParams

    def facts(self, params: FactsParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        return {"host": HostFactsFact(tuple(params.disk_paths), params.gpu_vendor)}

    def plan(self, params: FactsParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        host: HostFacts = facts["host"]
        return NoOp(host.summary())


class DiskFreeParams(Params):
    path: HostPath | Annotated[str, StringConstraints(pattern=r"^/$")]
    min_free: ByteSize  # bytes, or "800GiB", "1.5TB"


class DiskFreeTask(Task[DiskFreeParams]):
    """Assert at least ``min_free`` bytes free at ``path`` (or its nearest existing parent)."""

    name = "disk_free"
    Params = DiskFreeParams

    def facts(self, params: DiskFreeParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        return {"disk": DiskFreeFact(params.path)}

    def plan(self, params: DiskFreeParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        return plan_disk_free(params.path, int(params.min_free), facts["disk"])


def plan_disk_free(path: str, need: int, free: DiskFree) -> Outcome:
    where = path if free.checked in (None, path) else f"{path} (measured at {free.checked})"
    if free.avail_bytes is None:
        return Fail(f"cannot measure free space at {where}: {free.error}")
    if free.avail_bytes < need:
        return Fail(f"not enough disk space at {where}: need {human_bytes(need)} ({need} bytes), "
                    f"free {human_bytes(free.avail_bytes)} ({free.avail_bytes} bytes) on {free.mount}",
                    hint="free space there, or point the path at a larger filesystem")
    return NoOp(f"{human_bytes(free.avail_bytes)} free at {where} (need {human_bytes(need)})")
