"""``glm5cluster rollout``: a running cluster to what its inventory now says, one replica group
at a time, never more than ``max_unavailable`` groups out of the router.

Per group that changed (``observe``: a rank's launch digest, the installed SGLang version, the
staged weights revision) or that is out of the router (a rollout stopped half-way):
1. out of the router: ``DELETE /workers/{id}`` (sglang-router 0.3.2 removes it at once: it has
   no Draining state and answers ``PATCH`` with 405, so the drain window is node 0's own);
2. drain: wait until node 0 has no running or waiting request (``GET /v1/loads?include=core``,
   SGLang 0.5.23 ``entrypoints/v1_loads.py:96``; else the ``sglang:num_running_reqs`` metric),
   at most ``drain_timeout``;
3. stop: SIGTERM node 0 (it drains and tells its ranks to exit), then the other ranks;
4. apply: ``playbooks/rollout.yaml`` on that group's hosts only (runtime, flag check with the
   installed parser, weights, preflights, launch, readiness, smoke);
5. back in: ``POST /workers`` with node 0's URL, wait until the router reports it healthy.
A group that fails stays out of the router, no other group is touched, and the cause (rank,
host, fix) is named with ``rollout --rollback``: the inventory last applied by a successful
``up``/``rollout`` (kept under ``~/.glm5cluster/applied/<cluster>/``) rolled out the same way.
Groups whose shape changed (tp, host set) are refused: that is a re-plan (down, up).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from glm5cluster.commands import CommandResult, Secret, Shell
from glm5cluster.connect.pool import fan_out
from glm5cluster.engine.procedures.launch import DRAIN_S, WORKER_GRACE_S, api_key_of
from glm5cluster.engine.report import RunReport, Status
from glm5cluster.errors import GlmError
from glm5cluster.facts.serving import WeightsStampFact
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.loader import LoadedInventory, load_inventory
from glm5cluster.model.nodes import resolve_nodes
from glm5cluster.runtime import for_inventory
from glm5cluster.runtime.facts import InstalledFact, ServiceStateFact, SurveyFact
from glm5cluster.runtime.rank import RankLaunch, rank_launch
from glm5cluster.tasks import agents
from glm5cluster.topology import Replica, Topology

Run = Callable[[str, Shell], CommandResult]
Echo = Callable[[str], None]


# ---- the inventory last applied (what --rollback goes back to) --------------------------------

def applied_dir(cluster: str) -> Path:
    home = os.environ.get("GLM5CLUSTER_HOME") or os.path.expanduser("~/.glm5cluster")
    return Path(home) / "applied" / cluster


def save_applied(loaded: LoadedInventory) -> None:
    """Record the inventory a successful up/rollout applied; the one before becomes ``previous``."""
    d = applied_dir(loaded.inventory.cluster.name)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = Path(loaded.path).read_text()
    cur = d / "inventory.yaml"
    if cur.is_file() and cur.read_text() != text:
        shutil.copyfile(cur, d / "previous.yaml")
        shutil.copyfile(d / "base_dir", d / "previous.base_dir")
    cur.write_text(text)
    (d / "base_dir").write_text(loaded.base_dir)


def load_applied(cluster: str, which: str = "inventory") -> LoadedInventory:
    d = applied_dir(cluster)
    path = d / f"{which}.yaml"
    if not path.is_file():
        raise GlmError(f"no inventory of cluster {cluster} recorded as applied ({path} is missing)",
                       hint="one is recorded by every successful `glm5cluster up` or `rollout`")
    loaded = load_inventory(path)
    base = (d / ("base_dir" if which == "inventory" else "previous.base_dir")).read_text().strip()
    return dataclasses.replace(loaded, base_dir=base, nodes=resolve_nodes(loaded.inventory, base_dir=base))


# ---- what each group runs, against what the inventory says ------------------------------------

@dataclass(frozen=True)
class GroupPlan:
    index: int
    hosts: tuple[str, ...]
    endpoint: str
    reasons: tuple[str, ...]  # why it rolls; empty: it runs what the inventory says
    reshaped: str = ""  # the group changed shape: re-plan, not rollout
    registered: bool | None = None  # in the router and healthy (None: no router)

    @property
    def rolls(self) -> bool:
        return bool(self.reasons) or self.registered is False

    def why(self) -> str:
        bits = list(self.reasons) + (["out of the router"] if self.registered is False else [])
        return "; ".join(bits) or "unchanged, serving"


def wanted_ranks(inv: Inventory, topo: Topology, rep: Replica) -> list[RankLaunch]:
    key, _ = api_key_of(inv, os.environ)
    rt = for_inventory(inv)
    return [rank_launch(inv, topo, rep, r, key, rt) for r in rep.ranks]


def observe(run: Run, inv: Inventory, topo: Topology, rep: Replica, in_router: bool | None) -> GroupPlan:
    """Read every rank of one group and name what differs from the inventory."""
    reasons: list[str] = []
    reshaped: list[str] = []
    survey = SurveyFact(inv.cluster.name)
    for w, rank in zip(wanted_ranks(inv, topo, rep), rep.ranks, strict=True):
        where = f"rank {w.node_rank} on {w.host}"
        state = ServiceStateFact(w.runtime, w.target, w.service.stamp_path)
        st = state.parse(run(w.host, state.command()))
        for item in survey.parse(run(w.host, survey.command())).items:
            if item.replica is not None and (item.replica != rep.index
                                             or (item.rank is not None and item.rank != rank.node_rank)):
                reshaped.append(f"{w.host} runs replica {item.replica} rank {item.rank}, the inventory now makes "
                                f"it replica {rep.index} rank {rank.node_rank}")
        if not st.running:
            reasons.append(f"{where}: not running ({st.detail})" if st.exists else f"{where}: not launched")
        elif st.digest != w.digest:
            reasons.append(f"{where}: launch config changed (flags, environment or image)")
    head = rep.head.node.name
    rt = for_inventory(inv)
    if script := rt.sglang_version_script():  # "": the runtime's version is its image's (above)
        have = InstalledFact.parse_text(run(head, Shell.sh(script, sudo=True, description="installed SGLang")).stdout)
        if have != inv.serving.sglang_version:
            reasons.append(f"SGLang {have or 'none'} installed on {head}, {inv.serving.sglang_version} wanted")
    if inv.model.pinned:
        stamp = WeightsStampFact(inv.model.weights_dir, agents.source("weights_stamp"))
        got = stamp.parse(run(head, stamp.command()))
        if got.commit != inv.model.revision:
            reasons.append(f"weights at {(got.commit or 'none')[:12]} on {head}, {inv.model.revision[:12]} wanted")
    return GroupPlan(rep.index, tuple(r.node.name for r in rep.ranks), rep.endpoint, tuple(reasons),
                     "; ".join(reshaped), in_router)


# ---- one group out, drained, stopped ---------------------------------------------------------

# Waits until node 0 has no running or waiting request (two readings in a row), at most argv[2] s.
DRAIN_PY = r"""
import json, re, sys, time, urllib.request as u, urllib.error as ue
key = sys.stdin.readline().strip(); port, limit = int(sys.argv[1]), float(sys.argv[2])
def get(path):
    r = u.Request("http://127.0.0.1:%d%s" % (port, path))
    if key: r.add_header("Authorization", "Bearer " + key)
    with u.urlopen(r, timeout=5) as f: return f.read().decode()
def busy():
    try:
        doc = json.loads(get("/v1/loads?include=core"))
        return "/v1/loads", sum(int(x.get("num_running_reqs", 0)) + int(x.get("num_waiting_reqs", 0)) for x in doc.get("loads", []))
    except ue.HTTPError as e:
        if e.code != 404: raise
    text = get("/metrics")
    vals = [float(m) for m in re.findall(r"^sglang:num_running_reqs\{[^}]*\} ([0-9.e+]+)$", text, re.M)]
    vals += [float(m) for m in re.findall(r"^sglang:num_queue_reqs\{[^}]*\} ([0-9.e+]+)$", text, re.M)]
    if not vals: return "none", 0
    return "sglang:num_running_reqs", int(sum(vals))
t0 = time.monotonic(); zeros = 0; src, n = "none", -1
while time.monotonic() - t0 < limit:
    try:
        src, n = busy()
    except Exception as e:
        src, n = "unreachable: %s" % e, 0
    zeros = zeros + 1 if n == 0 else 0
    if zeros >= 2: break
    time.sleep(0.5)
print(json.dumps({"source": src, "running": n, "waited": round(time.monotonic() - t0, 1), "drained": zeros >= 2}))
"""


def drain_head(run: Run, inv: Inventory, rep: Replica, timeout: float) -> str:
    key, _ = api_key_of(inv, os.environ)
    stdin: str | Secret = Secret("api_key", key + "\n") if key else "\n"
    res = run(rep.head.node.name, Shell.cmd("python3", "-c", DRAIN_PY, str(inv.serving.http_port), str(timeout),
                                            stdin=stdin, timeout=timeout + 60, description=f"drain replica {rep.index}"))
    try:
        doc = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"drain not measured (exit {res.exit_code})"
    if doc.get("drained"):
        return f"node 0 idle after {doc['waited']}s ({doc['source']})"
    return f"drain timeout after {doc['waited']}s with {doc['running']} request(s) running ({doc['source']})"


def stop_group(run: Run, wanted: Sequence[RankLaunch], forks: int) -> None:
    """SIGTERM node 0 (it drains and tells the group to exit), then the other ranks."""

    def stop(w: RankLaunch, head: bool) -> CommandResult:
        return run(w.host, Shell.sh(w.runtime.stop_script(w.target, head=head, drain=DRAIN_S, grace=WORKER_GRACE_S)
                                    + "true\n", sudo=True, timeout=DRAIN_S + WORKER_GRACE_S * 3 + 60,
                                    description=f"stop {w.target} (rank {w.node_rank})"))

    head, others = wanted[0], {w.host: w for w in wanted[1:]}
    res = stop(head, True)
    if not res.ok:
        raise GlmError(f"stopping node 0 on {head.host} failed: {res.tail(3)}")
    got = fan_out(list(others), lambda h: stop(others[h], False), forks, None)
    for h, r in got.items():
        if r.error is not None:
            raise GlmError(f"stopping rank on {h} failed: {r.error}")
        if r.value is not None and not r.value.ok:
            raise GlmError(f"stopping rank on {h} failed: {r.value.tail(3)}")


def first_failure(report: RunReport) -> str:
    """The first failed step and host of a run, as one line with its fix."""
    for step in report.steps:
        for host, res in step.results.items():
            if res.status in (Status.FAILED, Status.UNREACHABLE):
                msg = res.message or res.summary
                hint = f" (fix: {res.hint})" if res.hint else ""
                return f"step {step.name!r} on {host}: {msg}{hint}"
    return report.aborted or f"exit code {report.exit_code}"
