"""What should run on each node of a replica, and the gang decision (pure; used by the
``launch`` procedure and by status/down).

A TP group lives and restarts as one: when every rank runs the wanted config nothing happens;
otherwise *all* ranks of the replica are stopped (the head first, so it drains) and started
again. The wanted config of a rank is digested (unit or ``docker run`` argv, env file, and the
secrets file's digest); the digest travels with the running instance (a stamp next to the env
file naming the systemd invocation, or a container label) so "changed" is exact.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from glm5cluster.commands import Secret, Shell
from glm5cluster.facts.serving import CONFIG_LABEL, RankState
from glm5cluster.model.inventory import Inventory, Runtime
from glm5cluster.render import (
    CONFIG_DIR,
    container_name,
    default_dialect,
    docker_run_argv,
    encode_env_line,
    env_file_path,
    env_file_vars,
    render_env_file,
    render_unit,
    secrets_file_path,
    unit_name,
    unit_vars,
)
from glm5cluster.topology import RankAssignment, Replica, Topology

UNIT_DIR = "/etc/systemd/system"
WORKER_GRACE_S = 10  # seconds a non-head rank gets to exit after its head stopped


def cluster_dir(cluster: str) -> str:
    return f"{CONFIG_DIR}/{cluster}"


def stamp_path(cluster: str, replica: int) -> str:
    """venv runtime: ``<digest> <InvocationID>`` of the run the launch procedure started."""
    return f"{cluster_dir(cluster)}/r{replica}.launched"


def target_name(inventory: Inventory, replica: int) -> str:
    """The unit (venv) or container (docker) of a replica on each of its nodes."""
    cluster = inventory.cluster.name
    if inventory.serving.runtime is Runtime.DOCKER:
        return container_name(cluster, replica)
    return unit_name(cluster, replica)


@dataclass(frozen=True)
class RankLaunch:
    """Everything one rank needs on its node."""

    host: str
    replica: int
    node_rank: int
    is_head: bool
    runtime: Runtime
    target: str  # unit or container name
    env_path: str
    env_content: str
    secrets_path: str | None
    secrets: Secret | None  # file content (KEY=value line), never displayed
    unit_path: str | None
    unit_content: str | None
    docker_argv: tuple[str, ...]
    digest: str
    stamp_path: str


def secrets_content(inventory: Inventory, api_key: str | None) -> Secret | None:
    name = inventory.serving.secrets.api_key_env
    if not name or api_key is None:
        return None
    return Secret(name, encode_env_line(name, api_key, default_dialect(inventory)) + "\n")


def rank_launch(inventory: Inventory, topology: Topology, replica: Replica, rank: RankAssignment,
                api_key: str | None) -> RankLaunch:
    cluster = inventory.cluster.name
    dialect = default_dialect(inventory)
    env = render_env_file(env_file_vars(inventory, replica, rank, dialect))
    secret = secrets_content(inventory, api_key) if rank.is_head else None
    h = hashlib.sha256()
    h.update(env.encode())
    h.update(hashlib.sha256(secret.value.encode()).digest() if secret else b"-")
    unit_content: str | None = None
    argv: tuple[str, ...] = ()
    if inventory.serving.runtime is Runtime.DOCKER:
        argv = tuple(docker_run_argv(inventory, topology, replica, rank))
        h.update(json.dumps(argv).encode())
        digest = h.hexdigest()[:32]
        argv = argv[:2] + ("--label", f"{CONFIG_LABEL}={digest}") + argv[2:]
    else:
        unit_content = render_unit(unit_vars(inventory, topology, replica, rank))
        h.update(unit_content.encode())
        digest = h.hexdigest()[:32]
    target = target_name(inventory, replica.index)
    return RankLaunch(
        host=rank.node.name, replica=replica.index, node_rank=rank.node_rank, is_head=rank.is_head,
        runtime=inventory.serving.runtime, target=target,
        env_path=env_file_path(cluster, replica.index), env_content=env,
        secrets_path=secrets_file_path(cluster) if secret else None, secrets=secret,
        unit_path=f"{UNIT_DIR}/{target}" if unit_content is not None else None,
        unit_content=unit_content, docker_argv=argv, digest=digest,
        stamp_path=stamp_path(cluster, replica.index),
    )


@dataclass(frozen=True)
class GangPlan:
    action: str  # "noop" | "start" | "restart"
    reasons: tuple[str, ...]  # one per rank that is not as wanted

    @property
    def summary(self) -> str:
        if self.action == "noop":
            return "running, config unchanged"
        return f"{self.action} the whole group: " + "; ".join(self.reasons)


def gang_plan(wanted: Sequence[RankLaunch], observed: Mapping[str, RankState]) -> GangPlan:
    """NoOp when every rank runs its wanted config; else stop and start the whole group."""
    reasons: list[str] = []
    any_running = False
    for w in wanted:
        st = observed.get(w.host)
        where = f"rank {w.node_rank} on {w.host}"
        if st is None:
            reasons.append(f"{where}: state unknown")
            continue
        any_running |= st.running
        if not st.running:
            code = f", exit code {st.exit_code}" if st.exit_code is not None else ""
            reasons.append(f"{where}: not running ({st.detail}{code})" if st.exists else f"{where}: not launched")
        elif st.digest != w.digest:
            reasons.append(f"{where}: config changed" if st.digest else f"{where}: started outside this launch")
    if not reasons:
        return GangPlan("noop", ())
    return GangPlan("restart" if any_running else "start", tuple(reasons))


# ---- commands (pure builders) --------------------------------------------------------------

def stop_command(w: RankLaunch, head: bool) -> Shell:
    """Stop one rank. The head gets SIGTERM and drains (unit TimeoutStopSec / docker -t);
    other ranks ignore SIGTERM (shutdown is driven by node 0): wait for them to follow their
    head, then SIGINT, then SIGKILL."""
    q = shlex.quote(w.target)
    grace = WORKER_GRACE_S * 2
    if w.runtime is Runtime.DOCKER:
        alive = f"[ \"$(docker inspect -f '{{{{.State.Running}}}}' {q} 2>/dev/null)\" = true ]"
        if head:
            body = f"if {alive}; then docker stop -t 300 {q} >/dev/null; fi; "
        else:
            body = (f"i=0; while {alive} && [ $i -lt {grace} ]; do sleep 0.5; i=$((i+1)); "
                    f"[ $i -eq {WORKER_GRACE_S} ] && docker kill -s INT {q} >/dev/null 2>&1; done; ")
        body += f"docker rm -f {q} >/dev/null 2>&1; true"
        return Shell.sh(body, sudo=True, timeout=420, description=f"stop {w.target} (rank {w.node_rank})")
    alive = f"systemctl is-active -q -- {q}"
    if head:
        body = f"systemctl stop -- {q}; "
    else:
        body = (f"i=0; while {alive} && [ $i -lt {grace} ]; do sleep 0.5; i=$((i+1)); "
                f"[ $i -eq {WORKER_GRACE_S} ] && systemctl kill -s SIGINT -- {q}; done; "
                f"{alive} && systemctl kill -s SIGKILL -- {q}; systemctl stop -- {q}; ")
    body += f"systemctl reset-failed -- {q} 2>/dev/null; true"
    return Shell.sh(body, sudo=True, timeout=420, description=f"stop {w.target} (rank {w.node_rank})")


def start_command(w: RankLaunch) -> Shell:
    """Start one rank; for the venv runtime also stamp the invocation with the config digest."""
    q = shlex.quote(w.target)
    if w.runtime is Runtime.DOCKER:
        return Shell.sh(f"docker rm -f {q} >/dev/null 2>&1; {shlex.join(w.docker_argv)} >/dev/null",
                        sudo=True, timeout=300, description=f"docker run {w.target} (rank {w.node_rank})")
    stamp = shlex.quote(w.stamp_path)
    body = (f"systemctl daemon-reload && systemctl reset-failed -- {q} 2>/dev/null; "
            f"systemctl start -- {q} && "
            f"echo \"{w.digest} $(systemctl show -p InvocationID --value -- {q})\" > {stamp}")
    return Shell.sh(body, sudo=True, timeout=120, description=f"systemctl start {w.target} (rank {w.node_rank})")
