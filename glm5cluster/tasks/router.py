"""The router's tasks: its venv (``router.venv``) and its service (``router.unit``), the real
``sglang-router`` on the router host as a service of the runtime seam (``runtime/router.py``:
a systemd unit whatever ``serving.runtime`` is), started with no workers; replicas join
through its ``/workers`` API only once they serve (``engine/procedures/router.py``).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from glm5cluster.commands import Command, CommandResult, Secret, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.rank_state import RankState
from glm5cluster.facts.router import ROUTER_PY
from glm5cluster.model.inventory import RouterSpec
from glm5cluster.runtime.facts import ServiceStateFact
from glm5cluster.runtime.router import STOP_GRACE_S, router_runtime, router_service
from glm5cluster.tasks.base import Change, HostContext, NoOp, Outcome, Params, Skip, Task
from glm5cluster.tasks.weights import pip_index_args

__all__ = ["STOP_GRACE_S", "RouterUnit", "RouterVenv", "api_command", "is_router_host", "router_state_fact"]


def spec_of(ctx: HostContext) -> RouterSpec:
    spec = ctx.inv.replicas.router
    assert spec is not None  # is_router_host said so
    return spec


def is_router_host(ctx: HostContext) -> tuple[bool, str]:
    spec = ctx.inventory.replicas.router if ctx.inventory is not None else None
    if spec is None:
        return False, "the inventory has no replicas.router"
    if ctx.node.name != spec.host:
        return False, f"the router runs on {spec.host}"
    return True, ""


# ---- venv -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RouterVenvState:
    python: bool
    version: str | None


class RouterVenvFact(Fact[RouterVenvState]):
    name = "router_venv"

    def __init__(self, venv: str) -> None:
        self.venv = venv

    def command(self) -> Shell:
        py = shlex.quote(f"{self.venv}/bin/python")
        return Shell.sh(f"test -x {py} || exit 3; {py} -c 'import importlib.metadata as m; "
                        f"print(m.version(\"sglang-router\"))'", description=f"sglang-router version in {self.venv}")

    def parse(self, result: CommandResult) -> RouterVenvState:
        if result.exit_code == 3:
            return RouterVenvState(False, None)
        out = result.stdout.strip().splitlines()
        return RouterVenvState(True, out[-1] if result.ok and out else None)


class RouterParams(Params):
    pass


class RouterVenv(Task[RouterParams]):
    """``python3 -m venv`` + ``pip install sglang-router==<version>`` on the router host."""

    name = "router.venv"
    Params = RouterParams

    def facts(self, params: RouterParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        ok, _ = is_router_host(ctx)
        return {"venv": RouterVenvFact(spec_of(ctx).venv_path)} if ok else {}

    def plan(self, params: RouterParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        ok, why = is_router_host(ctx)
        if not ok:
            return Skip(why)
        inv, spec = ctx.inv, spec_of(ctx)
        st: RouterVenvState = facts["venv"]
        if st.version == spec.version:
            return NoOp(f"sglang-router {st.version} installed in {spec.venv_path}")
        cmds: list[Command] = []
        if not st.python:
            cmds.append(Shell.cmd("python3", "-m", "venv", spec.venv_path, sudo=True,
                                  description=f"create {spec.venv_path}"))
        cmds.append(Shell.cmd(f"{spec.venv_path}/bin/pip", "install", "--disable-pip-version-check", "-q",
                              *pip_index_args(inv.serving.package_index), f"sglang-router=={spec.version}",
                              sudo=True, timeout=1800, description=f"pip install sglang-router=={spec.version}"))
        was = f" (was {st.version})" if st.version else ""
        return Change(cmds, f"install sglang-router {spec.version} into {spec.venv_path}{was}")


# ---- the service -----------------------------------------------------------------------------

def router_state_fact(ctx: HostContext) -> ServiceStateFact:
    rt = router_runtime(ctx.inv)
    svc = router_service(ctx.inv, rt)
    return ServiceStateFact(rt, rt.target(svc.stem), svc.stamp_path)


class RouterUnit(Task[RouterParams]):
    """The router's service as the seam installs it, running the current definition (restarted,
    with the seam's stop-with-grace, when it changed: a restart forgets the registered workers,
    which ``router.register`` adds back)."""

    name = "router.unit"
    Params = RouterParams

    def facts(self, params: RouterParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        ok, _ = is_router_host(ctx)
        return {"service": router_state_fact(ctx)} if ok else {}

    def plan(self, params: RouterParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        ok, why = is_router_host(ctx)
        if not ok:
            return Skip(why)
        rt = router_runtime(ctx.inv)
        svc = router_service(ctx.inv, rt)
        target = rt.target(svc.stem)
        installed = rt.install(svc)
        st: RankState = facts["service"]
        if st.current(installed.digest):
            return NoOp(f"{target} {st.state}, unchanged")
        cmds: list[Command] = list(installed.uploads)
        if st.exists:
            cmds.append(Shell.sh(rt.stop_script(target, head=True, drain=STOP_GRACE_S, grace=0), sudo=True,
                                 timeout=STOP_GRACE_S + 60, description=f"stop {target}"))
        cmds.append(rt.start(svc, installed))
        why_now = ("new" if not st.exists else f"was {st.state}" if not st.running else "definition changed")
        verb = "restart" if st.exists else "start"
        return Change(cmds, f"{verb} {target} ({why_now}) on port {spec_of(ctx).port}", diff=installed.definition)


# ---- the /workers API -------------------------------------------------------------------------

def api_command(port: int, ops: list[list[Any]], key: str | None, description: str, timeout: float) -> Shell:
    """Run ``ROUTER_PY`` on the router host; the worker API key (if any) travels on stdin only."""
    body = json.dumps({"port": port, "key": key, "ops": ops})
    stdin: str | Secret = Secret("router_request", body) if key else body
    return Shell.cmd("python3", "-c", ROUTER_PY, stdin=stdin, timeout=timeout, description=description)
