"""Node-side inputs preflight compares across ranks: who holds the serving ports (process and
cgroup, so the cluster's own services can be told apart) and the weights stamp.

Each fact is a command plus a pure parser. A service's own state is its runtime's
(``runtime/``, parsed into ``facts.rank_state.RankState``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact

MANIFEST = ".glm5cluster-manifest.json"


# ---- preflight inputs ----------------------------------------------------------------------

@dataclass(frozen=True)
class PortHolder:
    port: int
    pid: int | None
    process: str
    cgroup: str


def port_holders_script(ports: tuple[int, ...]) -> str:
    plist = " ".join(str(int(p)) for p in ports)
    return (
        f"for p in {plist}; do ss -Hltnp \"sport = :$p\" 2>/dev/null | while IFS= read -r l; do "
        "pid=$(printf '%s\\n' \"$l\" | sed -n 's/.*pid=\\([0-9][0-9]*\\).*/\\1/p' | head -n1); "
        "name=$(printf '%s\\n' \"$l\" | sed -n 's/.*users:((\"\\([^\"]*\\)\".*/\\1/p' | head -n1); "
        "cg=''; [ -n \"$pid\" ] && cg=$(tr '\\n' ' ' < /proc/$pid/cgroup 2>/dev/null); "
        "echo \"port=$p pid=${pid:--} proc=${name:--} cgroup=$cg\"; done; done; true"
    )


def parse_port_holders(text: str) -> tuple[PortHolder, ...]:
    out = []
    for line in text.splitlines():
        if not line.startswith("port="):
            continue
        head, _, cgroup = line.partition(" cgroup=")
        kv = dict(part.split("=", 1) for part in head.split() if "=" in part)
        pid = kv.get("pid", "-")
        out.append(PortHolder(int(kv["port"]), int(pid) if pid.isdigit() else None,
                              kv.get("proc", "-"), cgroup.strip()))
    return tuple(out)


class PortHoldersFact(Fact[tuple[PortHolder, ...]]):
    """Who listens on the given TCP ports (process and cgroup, so our own unit can be told apart)."""

    name = "port_holders"

    def __init__(self, ports: tuple[int, ...]) -> None:
        self.ports = tuple(sorted(set(ports)))

    def command(self) -> Shell:
        return Shell.sh(port_holders_script(self.ports), sudo=True, description="who holds the serving ports")

    def parse(self, result: CommandResult) -> tuple[PortHolder, ...]:
        return parse_port_holders(result.stdout)


@dataclass(frozen=True)
class WeightsStamp:
    present: bool
    repo: str | None = None
    commit: str | None = None
    files: int = 0
    missing: tuple[str, ...] = ()  # listed files absent or of the wrong size
    error: str = ""


class WeightsStampFact(Fact[WeightsStamp]):
    """The weights manifest stamp (written after verified staging) and which listed files are gone."""

    name = "weights_stamp"

    def __init__(self, weights_dir: str, program: str) -> None:
        self.weights_dir, self.program = weights_dir, program  # program: tasks/agents/weights_stamp.py

    def command(self) -> Shell:
        return Shell.cmd("python3", "-c", self.program, self.weights_dir, MANIFEST, sudo=True,
                         description="read the weights stamp")

    def parse(self, result: CommandResult) -> WeightsStamp:
        return parse_stamp(result)


def parse_stamp(result: CommandResult) -> WeightsStamp:
    try:
        doc = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return WeightsStamp(False, error=result.tail(3) or f"exit {result.exit_code}")
    return WeightsStamp(bool(doc.get("present")), doc.get("repo"), doc.get("commit"), int(doc.get("files") or 0),
                        tuple(doc.get("missing") or ()), str(doc.get("error") or ""))
