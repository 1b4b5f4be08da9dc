"""Tiny tasks for engine tests: state lives in files under a per-host folder on this machine,
reached through ``FakeConnection`` responders that run the commands locally."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glm5cluster.commands import CommandResult, Secret, Shell
from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.local import LocalConnection
from glm5cluster.facts.base import Fact
from glm5cluster.model.inventory import GpuKind
from glm5cluster.model.nodes import Node, SshTarget
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Params, Task


class FileContent(Fact[str | None]):
    name = "file_content"

    def __init__(self, path: str) -> None:
        self.path = path

    def command(self) -> Shell:
        return Shell.sh(f"cat {shlex.quote(self.path)} 2>/dev/null || echo @@absent")

    def parse(self, result: CommandResult) -> str | None:
        return None if result.stdout.strip() == "@@absent" else result.stdout


class SetParams(Params):
    key: str
    value: str
    mode: int = 0o644


class SetValue(Task[SetParams]):
    """Ensure <root>/<host>/<key> holds <value>. The node's ``state_root`` label is the state root."""

    name = "set_value"
    Params = SetParams
    privileged = False

    def _path(self, params: SetParams, ctx: HostContext) -> str:
        return f"{ctx.node.labels['state_root']}/{ctx.node.name}/{params.key}"

    def facts(self, params: SetParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        return {"current": FileContent(self._path(params, ctx))}

    def plan(self, params: SetParams, ctx: HostContext, facts: Mapping[str, Any]) -> Any:
        if facts["current"] == params.value:
            return NoOp(f"{params.key} already {params.value}")
        path = self._path(params, ctx)
        return Change([Shell.sh(f"mkdir -p {shlex.quote(str(Path(path).parent))} && "
                                f"printf %s {shlex.quote(params.value)} > {shlex.quote(path)}")],
                      f"set {params.key} to {params.value}", diff=f"-{facts['current']}\n+{params.value}")


class SecretParams(Params):
    token: str


class UseSecret(Task[SecretParams]):
    """Always changes: pipes a secret through stdin and echoes it (the log must mask it)."""

    name = "use_secret"
    Params = SecretParams
    privileged = False

    def plan(self, params: SecretParams, ctx: HostContext, facts: Mapping[str, Any]) -> Any:
        return Change([Shell.sh("cat; echo; exit 0", stdin=Secret("token", params.token))], "use token")


class FailParams(Params):
    exit_code: int = 3


class RunFailing(Task[FailParams]):
    name = "run_failing"
    Params = FailParams
    privileged = False

    def plan(self, params: FailParams, ctx: HostContext, facts: Mapping[str, Any]) -> Any:
        if ctx.node.labels.get("refuse") == "yes":
            return Fail("host refuses", hint="fix it")
        return Change([Shell.sh(f"echo boom >&2; exit {params.exit_code}")], "run failing")


TASKS = {"set_value": SetValue(), "use_secret": UseSecret(), "run_failing": RunFailing()}


def node(name: str, groups: tuple[str, ...] = (), labels: dict[str, str] | None = None) -> Node:
    return Node(name=name, ssh=SshTarget(address=name), cluster_address=name, interface=None,
                gpu_kind=GpuKind.H200, gpu_count=8, labels=labels or {}, groups=groups)


def local_fake(host: str) -> FakeConnection:
    local = LocalConnection(host)
    return FakeConnection(host, responder=local.run)
