"""The router: the real ``sglang-router`` in its own venv on the router host, run as the systemd
unit ``glm5-<cluster>-router.service`` (whatever ``serving.runtime`` is: it is one light
process), started with no workers; replicas join through its ``/workers`` API only once they
serve (``engine/procedures/router.py``).

Launch options are the 0.3.2 wheel's (``sglang_router/router_args.py``, ``launch_router
--help``): ``--host``, ``--port``, ``--policy``, ``--health-check-interval-secs`` (default 60),
``--health-failure-threshold`` (default 3), ``--log-level``; the log is ANSI-coloured unless
``NO_COLOR`` is set.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from glm5cluster.commands import Command, CommandResult, Secret, Shell, Upload
from glm5cluster.facts.base import Fact
from glm5cluster.facts.router import ROUTER_PY
from glm5cluster.model.inventory import Inventory, RouterSpec
from glm5cluster.render import systemd_command_line
from glm5cluster.tasks.base import Change, HostContext, NoOp, Outcome, Params, Skip, Task
from glm5cluster.tasks.weights import pip_index_args

UNIT_DIR = "/etc/systemd/system"
STOP_GRACE_S = 30  # the router's own --shutdown-grace-period-secs default is 180


def router_stem(cluster: str) -> str:
    """``glm5-<cluster>-router``: the runtime seam's name for the router's service."""
    return f"glm5-{cluster}-router"


def router_unit(cluster: str) -> str:
    return f"{router_stem(cluster)}.service"


def router_argv(inv: Inventory) -> list[str]:
    spec = inv.replicas.router
    assert spec is not None
    return [f"{spec.venv_path}/bin/python", "-m", "sglang_router.launch_router",
            "--host", "0.0.0.0", "--port", str(spec.port), "--policy", spec.policy,
            "--health-check-interval-secs", str(spec.health_check_interval),
            "--log-level", "info"]


def render_router_unit(inv: Inventory) -> str:
    spec = inv.replicas.router
    assert spec is not None
    return (
        "[Unit]\n"
        f"Description=glm5cluster router of cluster {inv.cluster.name} (sglang-router {spec.version})\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\nType=exec\nEnvironment=NO_COLOR=1\n"
        f"ExecStart={systemd_command_line(router_argv(inv))}\n"
        "Restart=on-failure\nRestartSec=2\n"
        f"TimeoutStopSec={STOP_GRACE_S}\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


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


# ---- unit -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RouterUnitState:
    digest: str | None  # sha256 of the unit file on the host (None: no file)
    active: str  # systemd ActiveState


class RouterUnitFact(Fact[RouterUnitState]):
    name = "router_unit"

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def command(self) -> Shell:
        q = shlex.quote(f"{UNIT_DIR}/{self.unit}")
        u = shlex.quote(self.unit)
        return Shell.sh(f"(sha256sum {q} 2>/dev/null || echo -) | cut -d' ' -f1; "
                        f"systemctl show -p ActiveState --value -- {u}", description=f"state of {self.unit}")

    def parse(self, result: CommandResult) -> RouterUnitState:
        lines = result.stdout.strip().splitlines() + ["", ""]
        digest = lines[0].strip()
        return RouterUnitState(None if digest in ("-", "") else digest, lines[1].strip() or "unknown")


class RouterUnit(Task[RouterParams]):
    """The router unit file as rendered, and the unit active (restarted when the file changed:
    a restart forgets the registered workers, which ``router.register`` adds back)."""

    name = "router.unit"
    Params = RouterParams

    def facts(self, params: RouterParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        ok, _ = is_router_host(ctx)
        return {"unit": RouterUnitFact(router_unit(ctx.inv.cluster.name))} if ok else {}

    def plan(self, params: RouterParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        ok, why = is_router_host(ctx)
        if not ok:
            return Skip(why)
        inv = ctx.inv
        unit = router_unit(inv.cluster.name)
        content = render_router_unit(inv)
        want = hashlib.sha256(content.encode()).hexdigest()
        st: RouterUnitState = facts["unit"]
        if st.digest == want and st.active == "active":
            return NoOp(f"{unit} active, unit unchanged")
        q = shlex.quote(unit)
        verb = "restart" if st.digest is not None else "start"
        cmds: list[Command] = [
            Upload(f"{UNIT_DIR}/{unit}", content.encode(), 0o644, sudo=True, description=f"write {unit}"),
            Shell.sh(f"systemctl daemon-reload && systemctl reset-failed -- {q} 2>/dev/null; "
                     f"systemctl restart -- {q}", sudo=True, timeout=120, description=f"systemctl {verb} {unit}"),
        ]
        why_now = ("unit changed" if st.digest not in (None, want) else
                   "new" if st.digest is None else f"was {st.active}")
        return Change(cmds, f"{verb} {unit} ({why_now}) on port {spec_of(ctx).port}", diff=content)


# ---- the /workers API -------------------------------------------------------------------------

def api_command(port: int, ops: list[list[Any]], key: str | None, description: str, timeout: float) -> Shell:
    """Run ``ROUTER_PY`` on the router host; the worker API key (if any) travels on stdin only."""
    body = json.dumps({"port": port, "key": key, "ops": ops})
    stdin: str | Secret = Secret("router_request", body) if key else body
    return Shell.cmd("python3", "-c", ROUTER_PY, stdin=stdin, timeout=timeout, description=description)


def stop_router_command(cluster: str, remove: bool) -> Shell:
    """Stop the router unit; with ``remove`` also delete its unit file."""
    unit = router_unit(cluster)
    q = shlex.quote(unit)
    f = shlex.quote(f"{UNIT_DIR}/{unit}")
    body = (f"if [ -e {f} ] || systemctl is-active -q -- {q}; then echo present; fi; "
            f"systemctl stop -- {q} 2>/dev/null; systemctl reset-failed -- {q} 2>/dev/null; ")
    if remove:
        body += f"rm -f {f}; systemctl daemon-reload; "
    body += "true"
    return Shell.sh(body, sudo=True, timeout=STOP_GRACE_S + 60, description=f"stop {unit}")
