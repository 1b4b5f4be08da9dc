"""``launch``: every replica's TP group running its wanted config, started and stopped as one.

Per replica: read each rank's service state and every service of the cluster on its hosts
(``runtime.survey``: both runtimes, any replica index) in one command per host, decide with
``tasks.launch.gang_plan``; unchanged and running -> ok in one round trip; otherwise write the
env file (0600), the secrets file (0600, head only) and the runtime's files (the unit), stop
every rank and whatever the cluster left on those hosts under another runtime or name (heads
first so they drain), remove the leftovers, and start every rank again (head first). A rank
is never restarted alone. How a service starts and stops is the runtime's (``runtime/``).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping

from glm5cluster.commands import CommandResult, Shell, Upload
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.errors import TransportError
from glm5cluster.facts.base import FactError
from glm5cluster.facts.batch import FactBatch
from glm5cluster.facts.rank_state import RankState
from glm5cluster.model.inventory import Inventory
from glm5cluster.runtime import by_kind, for_inventory
from glm5cluster.runtime.rank import NodeFabric, RankLaunch, cluster_dir, rank_launch
from glm5cluster.runtime.survey import Item, parse_survey, survey_script
from glm5cluster.tasks import node_fabric as NF
from glm5cluster.tasks.launch import gang_plan
from glm5cluster.topology import Replica

DRAIN_S = 300.0  # a head's drain before SIGKILL (the unit's TimeoutStopSec / docker --stop-timeout)
WORKER_GRACE_S = 10.0  # seconds a non-head rank gets to follow its head, then as long after SIGINT
_SPLIT = "@@glm5cluster:state-end@@"
_FABRIC = "@@glm5cluster:fabric-begin@@"


class LaunchParams(Params):
    restart: bool = False  # restart every group even when unchanged (``up --restart``)


class LaunchFailed(Exception):
    def __init__(self, host: str, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.host, self.message, self.result = host, message, result


def api_key_of(inventory: Inventory, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(key, problem): the API key from the controller's environment, when the inventory names one."""
    name = inventory.serving.secrets.api_key_env
    if not name:
        return None, None
    value = environ.get(name)
    if not value:
        return None, f"serving.secrets.api_key_env names {name}, which is not set in this shell"
    return value, None


def skip_unplaced(ctx: ClusterContext, results: dict[str, StepResult], why: str) -> None:
    for h in ctx.hosts:
        results.setdefault(h, StepResult(Status.SKIPPED, why))


def selected_replicas(ctx: ClusterContext, results: dict[str, StepResult]) -> list[Replica]:
    """Replicas whose ranks are all in the step's hosts; partly selected ones are skipped."""
    out: list[Replica] = []
    if ctx.topology is None:
        return out
    for rep in ctx.topology.replicas:
        names = [r.node.name for r in rep.ranks]
        chosen = [h for h in names if h in ctx.hosts]
        if not chosen:
            continue
        if len(chosen) < len(names):
            left = ", ".join(h for h in names if h not in ctx.hosts)
            for h in chosen:
                results[h] = StepResult(Status.SKIPPED, f"replica {rep.index} is not fully selected "
                                        f"(missing {left}): a TP group is handled as a whole")
            continue
        out.append(rep)
    skip_unplaced(ctx, results, "not part of any replica")
    return out


def per_replica(ctx: ClusterContext, replicas: list[Replica], what: str,
                fn: Callable[[Replica], dict[str, StepResult]]) -> dict[str, StepResult]:
    """``fn`` for each replica in parallel; a replica whose ``fn`` raised fails on all its ranks."""
    out: dict[str, StepResult] = {}
    if not replicas:
        return out
    got = ctx.fan_out(lambda i: fn(replicas[int(i)]), [str(i) for i in range(len(replicas))], timeout=None)
    for i, hr in got.items():
        if hr.ok and hr.value is not None:
            out.update(hr.value)
        else:
            for r in replicas[int(i)].ranks:
                out[r.node.name] = StepResult(Status.FAILED, message=f"{what} failed: {hr.error}")
    return out


def read_rank(ctx: ClusterContext, w: RankLaunch,
              rep: Replica) -> tuple[RankState, tuple[Item, ...], NodeFabric]:
    """The rank's own service state, the cluster's other services on its host and the node's
    fabric (the interface to the head, RDMA: ``tasks/node_fabric.py``), in one command."""
    inv = ctx.inventory
    cluster = inv.cluster.name
    node = next(r.node for r in rep.ranks if r.node.name == w.host)
    batch = FactBatch(NF.fabric_facts(rep.head.node.cluster_address, node.interface, inv.serving.env))
    script = (w.runtime.state_script(w.target, w.service.stamp_path) + f"echo '{_SPLIT}'\n"
              + survey_script(cluster, cluster_dir(cluster)) + f"\necho '{_FABRIC}'\n" + (batch.command().script or ""))
    res = ctx.run(w.host, Shell.sh(script, sudo=True, description=f"state of {w.target} and the cluster's services"))
    state_text, _, rest = res.stdout.partition(_SPLIT + "\n")
    rest, _, fabric_text = rest.partition(_FABRIC + "\n")
    others = parse_survey(cluster, rest).others(w.runtime.kind, w.target)
    try:
        facts = batch.parse(CommandResult(res.command, 0, fabric_text, res.stderr))
        fabric = NF.node_fabric(w.host, rep.head.node.name, rep.head.node.cluster_address, node.interface,
                                inv.serving.env, facts)
    except (FactError, ValueError):  # an unreadable fact leaves the launch as the inventory says
        fabric = NodeFabric()
    return w.runtime.parse_state(w.target, state_text), others, fabric


class Launch:
    name = "launch"
    Params = LaunchParams

    def run(self, params: LaunchParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        results: dict[str, StepResult] = {}
        if ctx.topology is None:
            return {h: StepResult(Status.FAILED, message="the inventory forms no topology",
                                  hint="run `glm5cluster plan INV` to see why") for h in ctx.hosts}
        key, problem = api_key_of(ctx.inventory, os.environ)
        replicas = selected_replicas(ctx, results)
        if problem:
            for rep in replicas:
                for r in rep.ranks:
                    results[r.node.name] = StepResult(Status.FAILED, message=problem,
                                                      hint="export the variable before running up")
            return results
        results.update(per_replica(ctx, replicas, "launch", lambda rep: self._replica(params, ctx, rep, key)))
        return results

    def _replica(self, params: LaunchParams, ctx: ClusterContext, rep: Replica,
                 key: str | None) -> dict[str, StepResult]:
        rt, topo = for_inventory(ctx.inventory), ctx.topology
        assert topo is not None  # run() returned early without one
        wanted = [rank_launch(ctx.inventory, topo, rep, r, key, rt) for r in rep.ranks]
        hosts = [w.host for w in wanted]
        observed: dict[str, RankState] = {}
        others: dict[str, tuple[Item, ...]] = {}
        fabric: dict[str, NodeFabric] = {}
        out: dict[str, StepResult] = {}
        for w in wanted:
            try:
                observed[w.host], others[w.host], fabric[w.host] = read_rank(ctx, w, rep)
            except TransportError as e:
                out[w.host] = StepResult(Status.UNREACHABLE, message=e.message, hint=e.hint)
        if any(f.env or f.devices for f in fabric.values()):  # the node's interface, GID index, RDMA device
            wanted = [rank_launch(ctx.inventory, topo, rep, r, key, rt, fabric.get(r.node.name)) for r in rep.ranks]
        if out:
            for h in hosts:
                out.setdefault(h, StepResult(Status.FAILED, message=f"replica {rep.index}: a rank's host is "
                                             "unreachable; the group is left as it is"))
            return out
        plan = gang_plan(wanted, observed, others)
        if plan.action == "noop" and not params.restart:
            return {w.host: StepResult(Status.OK, f"{w.target} rank {w.node_rank}: {plan.summary}") for w in wanted}
        summary = plan.summary if plan.action != "noop" else "restart the whole group (asked)"
        if ctx.check:
            return {w.host: StepResult(Status.CHANGED, f"replica {rep.index}: would {summary}") for w in wanted}
        out_note = self._out_of_router(ctx, rep, [observed[w.host] for w in wanted])
        summary += out_note
        try:
            self._apply(ctx, wanted, plan.stale)
        except LaunchFailed as e:
            self._stop_all(ctx, wanted, {})  # never leave half a group running
            for w in wanted:
                r = e.result
                out[w.host] = StepResult(
                    Status.FAILED, summary,
                    message=e.message if w.host == e.host else f"replica {rep.index} not started: {e.host}: {e.message}",
                    exit_code=r.exit_code if r is not None and w.host == e.host else None,
                    tail=r.tail() if r is not None and w.host == e.host else "")
            return out
        return {w.host: StepResult(Status.CHANGED, f"replica {rep.index} rank {w.node_rank}: {summary}") for w in wanted}

    def _out_of_router(self, ctx: ClusterContext, rep: Replica, states: list[RankState]) -> str:
        """A running group behind the router leaves it before it stops (its circuit breakers
        would open while it restarts); ``router.register`` adds it back after readiness and the
        smoke test. A router that is not there (yet) or does not answer changes nothing here."""
        topo = ctx.topology
        if topo is None or topo.router is None or not any(st.running for st in states):
            return ""
        from glm5cluster.engine.procedures.router import take_out  # router imports this module

        rh = topo.router.node.name
        ctx.progress(rep.head.node.name, "taking the replica out of the router")
        try:
            reply = take_out(ctx.run, ctx.inventory, topo, [rep])
        except TransportError as e:
            return f"; the router on {rh} did not answer ({e.message}): not taken out of it"
        if not reply.ok:
            return f"; not taken out of the router: {reply.error}"
        return "; taken out of the router first" if reply.done else ""

    # ---- apply ----------------------------------------------------------------------------
    def _apply(self, ctx: ClusterContext, wanted: list[RankLaunch], stale: Mapping[str, tuple[Item, ...]]) -> None:
        cluster = ctx.inventory.cluster.name

        def files(w: RankLaunch) -> None:
            ctx.progress(w.host, "writing config")
            self._ok(ctx, w.host, Shell.cmd("install", "-d", "-m", "0700", "-o", "root", "-g", "root",
                                            cluster_dir(cluster), sudo=True))
            self._put(ctx, w.host, w.env)
            if w.secrets is not None and w.secrets_path is not None:
                self._put(ctx, w.host, Upload(w.secrets_path, w.secrets.value.encode(), 0o600, "root", "root",
                                              sudo=True, description=f"write {w.secrets_path} (secret, mode 0600)"))
            for up in w.installed.uploads:
                self._put(ctx, w.host, up)

        self._each(ctx, wanted, files)
        self._stop_all(ctx, wanted, stale, strict=True)
        head, workers = wanted[0], wanted[1:]
        ctx.progress(head.host, "starting rank 0")
        self._ok(ctx, head.host, head.runtime.start(head.service, head.installed))

        def start(w: RankLaunch) -> None:
            ctx.progress(w.host, f"starting rank {w.node_rank}")
            self._ok(ctx, w.host, w.runtime.start(w.service, w.installed))

        self._each(ctx, workers, start)
        for w in wanted:
            ctx.progress(w.host, "started")

    def _stop_all(self, ctx: ClusterContext, wanted: list[RankLaunch], stale: Mapping[str, tuple[Item, ...]],
                  strict: bool = False) -> None:
        """Heads first (the group's head and any stale rank 0), then every other rank; then the
        stale services are removed."""
        inv = ctx.inventory

        def script(w: RankLaunch, heads: bool) -> str:
            parts = []
            if w.is_head == heads:
                parts.append(w.runtime.stop_script(w.target, head=heads, drain=DRAIN_S, grace=WORKER_GRACE_S))
            for it in stale.get(w.host, ()):
                if (it.rank in (0, None)) == heads and it.running:
                    rt = by_kind(inv, it.kind)
                    parts.append(rt.stop_script(it.name, head=heads, drain=DRAIN_S, grace=WORKER_GRACE_S))
            if not heads:
                for kind in ("unit", "container"):
                    names = [it.name for it in stale.get(w.host, ()) if it.kind == kind]
                    if names:
                        parts.append(by_kind(inv, kind).remove_script(names))
            return "".join(parts)

        def stop(w: RankLaunch, heads: bool) -> None:
            body = script(w, heads)
            if not body:
                return
            names = [w.target] + [i.name for i in stale.get(w.host, ())]
            ctx.progress(w.host, "stopping the group" if heads else "stopping (after the head)")
            res = ctx.run(w.host, Shell.sh(body + "true\n", sudo=True, timeout=DRAIN_S + 4 * WORKER_GRACE_S + 120,
                                           description=f"stop {', '.join(names)}"))
            if strict and not res.ok:
                raise LaunchFailed(w.host, f"could not stop {', '.join(shlex.quote(n) for n in names)}", res)

        try:
            self._each(ctx, wanted, lambda w: stop(w, True))
            self._each(ctx, wanted, lambda w: stop(w, False))
        except (LaunchFailed, TransportError):
            if strict:
                raise

    def _each(self, ctx: ClusterContext, items: list[RankLaunch], fn: Callable[[RankLaunch], None]) -> None:
        if not items:
            return
        by_host = {w.host: w for w in items}
        got = ctx.fan_out(lambda h: fn(by_host[h]), list(by_host), timeout=None)
        for h, hr in got.items():
            if hr.error is not None:
                if isinstance(hr.error, LaunchFailed):
                    raise hr.error
                raise LaunchFailed(h, str(getattr(hr.error, "message", hr.error)))

    def _ok(self, ctx: ClusterContext, host: str, cmd: Shell) -> CommandResult:
        res = ctx.run(host, cmd)
        if not res.ok:
            raise LaunchFailed(host, f"{cmd.display()} exited {res.exit_code}", res)
        return res

    def _put(self, ctx: ClusterContext, host: str, up: Upload) -> None:
        res = ctx.put(host, up)
        if not res.ok:
            raise LaunchFailed(host, f"{up.display()} failed", res)
