"""What the SGLang runtime sees (``tasks/agents/runtime_env.py``'s ``GLM5ENV`` line) and the GPUs'
compute processes (``nvidia-smi --query-compute-apps``), for preflight's ``spec`` check."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact

PREFIX = "GLM5ENV "


@dataclass(frozen=True)
class RuntimeEnv:
    ok: bool
    memlock: int = 0  # bytes; -1 unlimited
    nofile: int = 0
    shm_bytes: int = -1
    dev_infiniband: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    error: str = ""


def parse_runtime_env(result: CommandResult) -> RuntimeEnv:
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(PREFIX)), None)
    if line is None:
        return RuntimeEnv(False, error=result.tail(2) or f"no answer (exit code {result.exit_code})")
    try:
        d = json.loads(line[len(PREFIX):])
        return RuntimeEnv(True, int(d["memlock"]), int(d["nofile"]), int(d["shm_bytes"]), bool(d["dev_infiniband"]),
                          {str(k): str(v) for k, v in d.get("versions", {}).items()})
    except (ValueError, KeyError, TypeError) as e:
        return RuntimeEnv(False, error=f"unreadable answer: {e}")


class RuntimeEnvFact(Fact[RuntimeEnv]):
    """``argv``: the runtime's python (venv python, or ``docker run ... --entrypoint python3 IMAGE``)
    followed by ``-c SOURCE``. ``rdma_argv``: the same, run instead where the host has
    ``/dev/infiniband`` (a container that gets the RDMA device, as the launch gives it)."""

    name = "runtime_env"

    def __init__(self, argv: Sequence[str], rdma_argv: Sequence[str] = ()) -> None:
        self.argv = tuple(argv)
        self.rdma_argv = tuple(rdma_argv)

    def command(self) -> Shell:
        # as root, as the server runs (unit User=root, or the docker engine's client)
        if self.rdma_argv and self.rdma_argv != self.argv:
            script = (f"if [ -d /dev/infiniband ]; then {shlex.join(self.rdma_argv)}; "
                      f"else {shlex.join(self.argv)}; fi")
            return Shell.sh(script, timeout=120, sudo=True, description="the runtime's limits and versions")
        return Shell.cmd(*self.argv, timeout=120, sudo=True, description="the runtime's limits and versions")

    def parse(self, result: CommandResult) -> RuntimeEnv:
        return parse_runtime_env(result)


@dataclass(frozen=True)
class ComputeApp:
    pid: int
    name: str
    used_mib: int | None


def parse_compute_apps(result: CommandResult) -> tuple[ComputeApp, ...] | None:
    """``nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader,nounits``;
    None when the query is not available (no driver, an old nvidia-smi)."""
    if not result.ok:
        return None
    out = []
    for line in result.stdout.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) >= 3 and cols[0].isdigit():
            out.append(ComputeApp(int(cols[0]), cols[1], int(cols[2]) if cols[2].isdigit() else None))
    return tuple(out)


class ComputeAppsFact(Fact[tuple[ComputeApp, ...] | None]):
    name = "compute_apps"

    def command(self) -> Shell:
        return Shell.cmd("nvidia-smi", "--query-compute-apps=pid,process_name,used_memory",
                         "--format=csv,noheader,nounits", timeout=30)

    def parse(self, result: CommandResult) -> tuple[ComputeApp, ...] | None:
        return parse_compute_apps(result)
