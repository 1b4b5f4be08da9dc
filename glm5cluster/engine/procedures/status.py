"""Read every replica's state: one command per host (unit/container state, the current run's
log tail, the host clock; on node 0 also ``/health``, ``/v1/models``, ``/server_info``), judged
by ``facts.replica.judge``. Read-only; used by ``glm5cluster status``.

HTTP probes run on node 0 itself through SSH (``curl`` to 127.0.0.1), so they work behind jump
hosts and firewalls. The API key (``serving.secrets.api_key_env``, read from the controller's
environment) reaches curl as a config on standard input (``curl -K -``), never in argv.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Secret, Shell
from glm5cluster.connect.pool import ConnectionPool, fan_out
from glm5cluster.facts.replica import (
    SHOW_PROPS,
    Clock,
    HeadProbe,
    HttpReply,
    Judgement,
    RankState,
    RankView,
    container_rank_state,
    judge,
    parse_clock,
    parse_http,
    parse_show,
    unit_rank_state,
)
from glm5cluster.facts.sections import section_script, split_sections
from glm5cluster.model.inventory import Inventory, Runtime
from glm5cluster.redact import mask
from glm5cluster.render import container_name, unit_name
from glm5cluster.topology import RankAssignment, Replica, Topology

LOG_TAIL = 300
HTTP_TIMEOUT = 5


@dataclass(frozen=True)
class RankStatus:
    view: RankView
    target: str  # unit or container name
    error: str = ""  # why the host could not be read


@dataclass(frozen=True)
class ReplicaStatus:
    index: int
    endpoint: str
    ranks: tuple[RankStatus, ...]
    head: HeadProbe | None
    judgement: Judgement
    model: str  # the model id the replica should serve
    version: str | None  # SGLang version (from /server_info, else the venv's package)
    now: float | None  # node 0's wall clock when read (for uptimes)


@dataclass(frozen=True)
class ClusterStatus:
    cluster: str
    runtime: str
    replicas: tuple[ReplicaStatus, ...]

    @property
    def all_serving(self) -> bool:
        return bool(self.replicas) and all(r.judgement.verdict == "serving" for r in self.replicas)


def served_model(inventory: Inventory) -> str:
    return inventory.serving.features.served_model_name or inventory.model.repo


def curl_config(api_key: str | None) -> str:
    """A curl config carrying the API key header (read by ``curl -K -`` from stdin)."""
    if not api_key:
        return ""
    value = api_key.replace("\\", "\\\\").replace('"', '\\"')
    return f'header = "Authorization: Bearer {value}"\n'


def _curl(port: int, path: str) -> str:
    url = shlex.quote(f"http://127.0.0.1:{port}{path}")
    return (f"command -v curl >/dev/null || {{ echo 'curl is not installed'; exit 127; }}\n"
            f"printf '%s\\n' \"$__glm5_cfg\" | curl -sS -m {HTTP_TIMEOUT} -K - -w '\\n%{{http_code}}' {url}")


def rank_script(inventory: Inventory, replica: Replica, rank: RankAssignment) -> str:
    cluster = inventory.cluster.name
    unit = shlex.quote(unit_name(cluster, replica.index))
    ctr = shlex.quote(container_name(cluster, replica.index))
    parts = [("clock", "cat /proc/uptime; date +%s.%N"),
             ("unit", f"systemctl show -p {','.join(SHOW_PROPS)} -- {unit}")]
    if inventory.serving.runtime is Runtime.DOCKER:
        parts.append(("container", f"docker inspect --format '{{{{json .State}}}}' {ctr}"))
        parts.append(("log", f"docker logs --tail {LOG_TAIL} {ctr} 2>&1"))
    else:
        parts.append(("log", (
            f"id=$(systemctl show -p InvocationID --value -- {unit})\n"
            f"if [ -n \"$id\" ]; then journalctl -q --no-pager -o cat _SYSTEMD_INVOCATION_ID=\"$id\""
            f" | tail -n {LOG_TAIL}; else journalctl -q --no-pager -o cat -u {unit} -n {LOG_TAIL}; fi")))
    if rank.is_head:
        port = inventory.serving.http_port
        parts += [("health", _curl(port, "/health")), ("models", _curl(port, "/v1/models")),
                  ("server-info", _curl(port, "/server_info"))]
        if inventory.serving.runtime is Runtime.VENV:
            py = shlex.quote(inventory.serving.venv_path.rstrip("/") + "/bin/python")
            parts.append(("version", f"{py} -c 'import importlib.metadata as m; print(m.version(\"sglang\"))'"))
    return "__glm5_cfg=$(cat)\n" + section_script(parts)


def rank_command(inventory: Inventory, replica: Replica, rank: RankAssignment, api_key: str | None) -> Shell:
    cfg = curl_config(api_key) if rank.is_head else ""
    stdin: str | Secret = Secret("curl config", cfg) if cfg else ""
    return Shell.sh(rank_script(inventory, replica, rank), sudo=True, stdin=stdin, timeout=60,
                    description=f"status of replica {replica.index} rank {rank.node_rank}")


@dataclass(frozen=True)
class RankReading:
    state: RankState
    log: tuple[str, ...]
    clock: Clock | None
    head: HeadProbe | None
    venv_version: str | None


def parse_rank(result: CommandResult, runtime: Runtime, is_head: bool) -> RankReading:
    parts = split_sections(result, ["clock", "unit", "log"])
    clock = parse_clock(parts["clock"].stdout)
    state = unit_rank_state(parse_show(parts["unit"].stdout), clock)
    if runtime is Runtime.DOCKER and "container" in parts:
        c = parts["container"]
        cstate = container_rank_state(c.stdout, c.exit_code)
        if cstate.state != "absent" or state.state == "absent":
            state = cstate
    log = tuple(mask(parts["log"].stdout).splitlines())
    head = None
    if is_head:
        def reply(name: str) -> HttpReply:
            p = parts.get(name)
            return parse_http(p.stdout) if p is not None and p.exit_code in (0, 7, 28, 52, 56) \
                else HttpReply(None, p.tail(2) if p is not None else "")
        head = HeadProbe(reply("health"), reply("models"), reply("server-info"))
    v = parts.get("version")
    version = v.stdout.strip() if v is not None and v.ok and v.stdout.strip() else None
    return RankReading(state, log, clock, head, version)


def collect(inventory: Inventory, topology: Topology, pool: ConnectionPool, api_key: str | None,
            forks: int = 32) -> ClusterStatus:
    jobs: dict[str, tuple[Replica, RankAssignment]] = {
        r.node.name: (rep, r) for rep in topology.replicas for r in rep.ranks}
    runtime = inventory.serving.runtime

    def one(host: str) -> RankReading:
        rep, rank = jobs[host]
        return parse_rank(pool.get(host).run(rank_command(inventory, rep, rank, api_key)), runtime, rank.is_head)

    got = fan_out(list(jobs), one, forks, timeout=120)
    replicas = tuple(_replica(inventory, rep, got) for rep in topology.replicas)
    return ClusterStatus(inventory.cluster.name, runtime.value, replicas)


def _replica(inventory: Inventory, rep: Replica, got: Mapping[str, object]) -> ReplicaStatus:
    cluster = inventory.cluster.name
    target = container_name(cluster, rep.index) if inventory.serving.runtime is Runtime.DOCKER \
        else unit_name(cluster, rep.index)
    ranks: list[RankStatus] = []
    head: HeadProbe | None = None
    version: str | None = None
    now: float | None = None
    for r in rep.ranks:
        hr = got[r.node.name]
        value = getattr(hr, "value", None)
        if not isinstance(value, RankReading):
            err = getattr(hr, "error", None)
            msg = str(getattr(err, "message", None) or err or "no result")
            ranks.append(RankStatus(RankView(r.node_rank, r.node.name, RankState("unreachable", msg)), target, msg))
            continue
        ranks.append(RankStatus(RankView(r.node_rank, r.node.name, value.state, value.log), target))
        if r.is_head:
            head = value.head
            now = value.clock.wall if value.clock else None
            version = (head.version if head else None) or value.venv_version
    model = served_model(inventory)
    verdict = judge([rs.view for rs in ranks], head, model)
    return ReplicaStatus(rep.index, rep.endpoint, tuple(ranks), head, verdict, model, version, now)
