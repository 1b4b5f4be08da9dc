"""Read every replica's state: one command per host (the rank's service as *both* runtimes see
it, with the current run's log tail; every other service of the cluster on the host; on node 0
also ``/health``, ``/v1/models``, ``/server_info``), judged by ``facts.replica.judge``. A rank
started by the other runtime (the inventory switched from docker to venv) is reported as what
it is, and services left from an earlier topology are named. Read-only; used by
``glm5cluster status``.

HTTP probes run on node 0 itself through SSH (``curl`` to 127.0.0.1), so they work behind jump
hosts and firewalls. The API key (``serving.secrets.api_key_env``, read from the controller's
environment) reaches curl as a config on standard input (``curl -K -``), never in argv.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace

from glm5cluster.commands import CommandResult, Secret, Shell
from glm5cluster.connect.pool import ConnectionPool, fan_out
from glm5cluster.facts.rank_state import RankState
from glm5cluster.facts.replica import (
    HeadProbe,
    HttpReply,
    Judgement,
    RankView,
    Verdict,
    judge,
    parse_http,
)
from glm5cluster.facts.sections import section_script, split_sections
from glm5cluster.model.inventory import Inventory
from glm5cluster.redact import mask
from glm5cluster.runtime import Runtime, all_runtimes, rank_stem
from glm5cluster.runtime.rank import cluster_dir, stamp_path
from glm5cluster.runtime.survey import Item, parse_survey, survey_script
from glm5cluster.topology import RankAssignment, Replica, Topology

LOG_TAIL = 300
HTTP_TIMEOUT = 5


@dataclass(frozen=True)
class RankStatus:
    view: RankView
    target: str  # the unit or container found (the inventory's runtime's name when none is)
    error: str = ""  # why the host could not be read
    note: str = ""  # e.g. "started by the docker runtime; the inventory says venv"
    others: tuple[Item, ...] = ()  # other services of this cluster on the host (earlier topology/runtime)
    runs: str = ""  # what it runs: the image's registry digest (docker) or the SGLang version (venv)


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
    """Both runtimes' view of the rank's service (state and current run's log), every service of
    the cluster on the host, and on node 0 the HTTP probes."""
    cluster = inventory.cluster.name
    stem = rank_stem(cluster, replica.index)
    parts: list[tuple[str, str]] = []
    runtimes = all_runtimes(inventory)
    for rt in runtimes:
        target = rt.target(stem)
        parts += [(f"state-{rt.kind}", rt.state_script(target, stamp_path(cluster, replica.index))),
                  (f"log-{rt.kind}", rt.run_log_script(target, tail=LOG_TAIL)),
                  (f"runs-{rt.kind}", rt.running_script(target))]
    parts.append(("survey", survey_script(cluster, cluster_dir(cluster))))
    if rank.is_head:
        port = inventory.serving.http_port
        parts += [("health", _curl(port, "/health")), ("models", _curl(port, "/v1/models")),
                  ("server-info", _curl(port, "/server_info"))]
        version = runtimes[0].sglang_version_script()
        if version:
            parts.append(("version", version))
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
    head: HeadProbe | None
    venv_version: str | None
    note: str = ""
    others: tuple[Item, ...] = ()
    runs: str = ""  # what the service runs: image digest (docker) or SGLang version (venv)


def parse_rank(result: CommandResult, inventory: Inventory, replica: Replica, is_head: bool) -> RankReading:
    cluster = inventory.cluster.name
    stem = rank_stem(cluster, replica.index)
    runtimes: tuple[Runtime, ...] = all_runtimes(inventory)
    parts = split_sections(result, [f"state-{rt.kind}" for rt in runtimes])
    states = [(rt, rt.parse_state(rt.target(stem), parts[f"state-{rt.kind}"].stdout)) for rt in runtimes]
    # the inventory's runtime first; the other one's service when only it exists (or only it runs)
    found = [x for x in states if x[1].exists]
    rt, state = next((x for x in found if x[1].up), found[0] if found else states[0])
    note = ""
    if rt is not runtimes[0] and state.exists:
        note = (f"started by the {rt.mode} runtime; the inventory says {runtimes[0].mode} "
                "(`glm5cluster up` replaces it)")
    log_part = parts.get(f"log-{rt.kind}")
    log = tuple(mask(log_part.stdout).splitlines()) if log_part is not None else ()
    survey = parts.get("survey")
    others: tuple[Item, ...] = ()
    if survey is not None:
        others = tuple(i for i in parse_survey(cluster, survey.stdout).others(rt.kind, state.target or rt.target(stem))
                       if i.replica is not None)
    head = None
    if is_head:
        def reply(name: str) -> HttpReply:
            p = parts.get(name)
            return parse_http(p.stdout) if p is not None and p.exit_code in (0, 7, 28, 52, 56) \
                else HttpReply(None, p.tail(2) if p is not None else "")
        head = HeadProbe(reply("health"), reply("models"), reply("server-info"))
    v = parts.get("version")
    version = v.stdout.strip() if v is not None and v.ok and v.stdout.strip() else None
    runs_part = parts.get(f"runs-{rt.kind}")
    runs = rt.parse_running(runs_part.stdout) if runs_part is not None and state.exists else ""
    return RankReading(state, log, head, version, note, others, runs)


def collect(inventory: Inventory, topology: Topology, pool: ConnectionPool, api_key: str | None,
            forks: int = 32) -> ClusterStatus:
    jobs: dict[str, tuple[Replica, RankAssignment]] = {
        r.node.name: (rep, r) for rep in topology.replicas for r in rep.ranks}

    def one(host: str) -> RankReading:
        rep, rank = jobs[host]
        res = pool.get(host).run(rank_command(inventory, rep, rank, api_key))
        return parse_rank(res, inventory, rep, rank.is_head)

    got = fan_out(list(jobs), one, forks, timeout=120)
    replicas = tuple(_replica(inventory, rep, got) for rep in topology.replicas)
    return ClusterStatus(inventory.cluster.name, inventory.serving.runtime.value, replicas)


def _replica(inventory: Inventory, rep: Replica, got: Mapping[str, object]) -> ReplicaStatus:
    wanted = all_runtimes(inventory)[0].target(rank_stem(inventory.cluster.name, rep.index))
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
            ranks.append(RankStatus(RankView(r.node_rank, r.node.name, RankState("unreachable", msg)), wanted, msg))
            continue
        ranks.append(RankStatus(RankView(r.node_rank, r.node.name, value.state, value.log),
                                value.state.target or wanted, note=value.note, others=value.others,
                                runs=value.runs))
        if r.is_head:
            head = value.head
            now = value.state.now
            version = (head.version if head else None) or value.venv_version
    model = served_model(inventory)
    verdict = judge([rs.view for rs in ranks], head, model)
    strays = [f"{i.name} on {rs.view.host} ({i.state})" for rs in ranks for i in rs.others if i.running]
    if strays:
        verdict = replace(verdict, reason=f"{verdict.reason}; also running from an earlier topology or runtime: "
                          + ", ".join(strays) + " (`glm5cluster up` replaces them, `down` removes them)")
    if verdict.verdict is Verdict.STOPPED and strays:
        verdict = replace(verdict, verdict=Verdict.BROKEN)
    return ReplicaStatus(rep.index, rep.endpoint, tuple(ranks), head, verdict, model, version, now)
