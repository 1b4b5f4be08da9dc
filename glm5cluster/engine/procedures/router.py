"""``router.register`` and ``router.down``: the replicas in the router, and the router gone.

``router.register`` (the last step of ``up``) runs on the router host once readiness and the
smoke test have passed: every replica whose ranks all came through the run is registered with
``POST /workers`` (its node 0's URL), workers the topology does not know are deleted, the
router must report every registered replica healthy, then the smoke test (thinking, instruct,
tool call) goes through the router. Replicas that failed earlier in the run are not added. A
cluster already registered and healthy changes nothing.

``router.down`` (``down``) deletes the workers of the replicas going down from the router and,
unless told to keep it, stops the router and removes its unit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Secret, Shell
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.procedures.launch import api_key_of
from glm5cluster.engine.procedures.smoke import verdict
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.errors import TransportError
from glm5cluster.facts.rank_state import RankState
from glm5cluster.facts.router import RouterReply, RouterState, parse_reply
from glm5cluster.model.inventory import Inventory
from glm5cluster.runtime.router import STOP_GRACE_S, router_runtime, router_service
from glm5cluster.sglang.args import served_model_name
from glm5cluster.tasks import agents
from glm5cluster.tasks.router import api_command
from glm5cluster.topology import Replica, Topology

Runner = Callable[[str, Shell], CommandResult]


def router_target(inventory: Inventory) -> str:
    """The router's unit (or container) name, as its runtime calls it."""
    return router_runtime(inventory).target(router_service(inventory).stem)


def router_log_hint(inventory: Inventory, host: str) -> str:
    """Where to read the router's log: the seam's command, or ``glm5cluster logs --router``."""
    rt = router_runtime(inventory)
    return f"`{rt.log_script(router_target(inventory), lines=50, since=None, follow=False)}` on {host}"


def service_state(run: Runner, inventory: Inventory, host: str) -> RankState:
    """The router's service, read by its runtime's one state probe."""
    rt = router_runtime(inventory)
    svc = router_service(inventory, rt)
    target = rt.target(svc.stem)
    res = run(host, Shell.sh(rt.state_script(target, svc.stamp_path), sudo=True, description=f"state of {target}"))
    return rt.parse_state(target, res.stdout)


def remove_router(run: Runner, inventory: Inventory, host: str) -> tuple[bool, str, CommandResult | None]:
    """Stop the router with the seam's stop-with-grace and remove it: (was there, target, result)."""
    rt = router_runtime(inventory)
    target = router_target(inventory)
    if not service_state(run, inventory, host).exists:
        return False, target, None
    script = rt.stop_script(target, head=True, drain=STOP_GRACE_S, grace=0) + rt.remove_script([target])
    return True, target, run(host, Shell.sh(script, sudo=True, timeout=STOP_GRACE_S + 90, description=f"stop {target}"))


def router_api(run: Runner, inventory: Inventory, topology: Topology, ops: list[list[object]],
               what: str, timeout: float = 60) -> RouterReply:
    """One call of the /workers script on the router host (``run`` is ``ctx.run`` or a pool's)."""
    assert topology.router is not None
    key, _ = api_key_of(inventory, os.environ)
    cmd = api_command(topology.router.port, ops, key, what, timeout + 60)
    return parse_reply(run(topology.router.node.name, cmd))


IN_FLIGHT_S = 1.0  # requests the router dispatched just before a DELETE reach node 0 within this


def take_out(run: Runner, inventory: Inventory, topology: Topology, replicas: list[Replica]) -> RouterReply:
    """Replicas out of the router (``DELETE /workers/{id}``) before their group stops: the router
    never sends them requests while they restart, so its circuit breakers stay closed (rollout,
    and ``launch`` when ``up`` restarts a group). ``router.register`` (or rollout) adds them back
    once they passed readiness and the smoke test."""
    urls = [rep.endpoint for rep in replicas]
    reply = router_api(run, inventory, topology, [["remove", urls, 30]],
                       "take " + ", ".join(f"replica {rep.index}" for rep in replicas) + " out of the router", 60)
    if reply.ok and reply.done:
        time.sleep(IN_FLIGHT_S)
    return reply


def put_in(run: Runner, inventory: Inventory, topology: Topology, replicas: list[Replica],
           timeout: float) -> RouterReply:
    """Replicas (back) into the router, and healthy there within ``timeout`` seconds."""
    urls = [rep.endpoint for rep in replicas]
    return router_api(run, inventory, topology, [["live", 30], ["add", urls], ["healthy", urls, timeout]],
                      "register " + ", ".join(f"replica {rep.index}" for rep in replicas) + " with the router",
                      timeout + 60)


def router_state(run: Runner, inventory: Inventory, topology: Topology) -> RouterState:
    return router_api(run, inventory, topology, [], "router state", 30).state


def smoke_through(run: Runner, inventory: Inventory, topology: Topology, request_timeout: float) -> tuple[bool, str]:
    """The smoke test's three requests sent to the router (on its host, 127.0.0.1)."""
    assert topology.router is not None
    key, problem = api_key_of(inventory, os.environ)
    if problem:
        return False, problem
    stdin: str | Secret = Secret("api_key", key + "\n") if key else "\n"
    res = run(topology.router.node.name, Shell.cmd(
        *agents.command("smoke_test", str(topology.router.port), served_model_name(inventory), str(request_timeout)),
        stdin=stdin, timeout=request_timeout * 3 + 30, description="smoke test through the router"))
    try:
        doc = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, f"smoke test through the router did not run (exit {res.exit_code}): {res.tail(3)}"
    problems = verdict(doc)
    return (not problems), "; ".join(problems) or "thinking, instruct and tool call passed through the router"


CIRCUITS_OPEN = "no_available_workers"  # the router's 503 code while every worker's breaker is open


class RegisterParams(Params):
    timeout: float = 300.0  # seconds for the router to report the replicas healthy
    request_timeout: float = 120.0
    # Replicas restarted behind the router trip its circuit breakers (sglang-router 0.3.2:
    # open after 10 failures, retried after 60 s): the smoke test waits that long for them.
    circuit_wait: float = 90.0
    circuit_poll: float = 5.0


class RouterRegister:
    name = "router.register"
    Params = RegisterParams

    def run(self, params: RegisterParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        topo = ctx.topology
        results: dict[str, StepResult] = {}
        if topo is None or topo.router is None:
            return {h: StepResult(Status.SKIPPED, "no replicas.router in the inventory") for h in ctx.hosts}
        rh = topo.router.node.name
        for h in ctx.hosts:
            if h != rh:
                results[h] = StepResult(Status.SKIPPED, f"the router runs on {rh}")
        if rh not in ctx.hosts:
            return results
        passed = [rep for rep in topo.replicas if all(r.node.name in ctx.hosts for r in rep.ranks)]
        left_out = [rep for rep in topo.replicas if rep not in passed]
        want = [rep.endpoint for rep in passed]
        known = {rep.endpoint for rep in topo.replicas}
        try:
            st = router_state(ctx.run, ctx.inventory, topo)
            stale = [w.url for w in st.workers if w.url not in known]
            missing = [u for u in want if st.worker(u) is None]
            unhealthy = [u for u in want if (w := st.worker(u)) is not None and not w.healthy]
            note = ("; not added (failed or not selected in this run): " + ", ".join(
                f"replica {r.index}" for r in left_out)) if left_out else ""
            if ctx.check:
                if not st.live:
                    results[rh] = StepResult(Status.CHANGED, f"would register {len(want)} replica(s) once the router runs{note}")
                elif missing or stale:
                    results[rh] = StepResult(Status.CHANGED, "would " + "; ".join(
                        ([f"register {', '.join(missing)}"] if missing else [])
                        + ([f"delete unknown worker(s) {', '.join(stale)}"] if stale else [])) + note)
                else:
                    results[rh] = StepResult(Status.OK, f"{len(want)} replica(s) registered"
                                             + (f" ({len(unhealthy)} not healthy yet)" if unhealthy else "") + note)
                return results
            ctx.progress(rh, f"registering {len(missing)} replica(s) with the router")
            reply = router_api(ctx.run, ctx.inventory, topo,
                               [["live", 60], ["remove", stale, 30], ["add", missing], ["healthy", want, params.timeout]],
                               "register replicas with the router", params.timeout + 120)
        except TransportError as e:
            results[rh] = StepResult(Status.UNREACHABLE, message=e.message, hint=e.hint)
            return results
        if not reply.ok:
            results[rh] = StepResult(Status.FAILED, message=f"router {topo.router.url}: {reply.error}",
                                     hint=f"the router's log: {router_log_hint(ctx.inventory, rh)}; "
                                          "the router must reach each node 0's /health")
            return results
        ok, msg = smoke_through(ctx.run, ctx.inventory, topo, params.request_timeout)
        deadline = time.monotonic() + params.circuit_wait
        while not ok and CIRCUITS_OPEN in msg and time.monotonic() < deadline:
            ctx.progress(rh, "the router's circuit breakers are open (replicas restarted behind it); waiting")
            time.sleep(params.circuit_poll)
            ok, msg = smoke_through(ctx.run, ctx.inventory, topo, params.request_timeout)
        if not ok:
            results[rh] = StepResult(Status.FAILED, message=f"router {topo.router.url}: {msg}",
                                     hint=f"glm5cluster status INV; the router's log: {router_log_hint(ctx.inventory, rh)}")
            return results
        changed = bool(missing or stale)
        summary = (f"{len(want)} replica(s) healthy in the router, smoke test passed through it"
                   + (f"; registered {', '.join(missing)}" if missing else "")
                   + (f"; deleted unknown {', '.join(stale)}" if stale else "") + note)
        results[rh] = StepResult(Status.CHANGED if changed else Status.OK, summary)
        return results


class RouterDownParams(Params):
    replicas: list[int] | None = None  # None: every replica
    keep_router: bool = False


class RouterDown:
    name = "router.down"
    Params = RouterDownParams

    def run(self, params: RouterDownParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        topo = ctx.topology
        if topo is None or topo.router is None:
            return {h: StepResult(Status.SKIPPED, "no replicas.router in the inventory") for h in ctx.hosts}
        rh = topo.router.node.name
        results = {h: StepResult(Status.SKIPPED, f"the router runs on {rh}") for h in ctx.hosts if h != rh}
        if rh not in ctx.hosts:
            return results
        chosen = [r for r in topo.replicas if params.replicas is None or r.index in params.replicas]
        urls = [r.endpoint for r in chosen]
        remove = params.replicas is None and not params.keep_router
        unit = router_target(ctx.inventory)
        try:
            st = router_state(ctx.run, ctx.inventory, topo)
            listed = [u for u in urls if st.worker(u) is not None]
            if ctx.check:
                what = ([f"deregister {', '.join(listed)}"] if listed else []) + ([f"stop and remove {unit}"] if remove else [])
                if remove and not st.live:
                    what = [w for w in what if not w.startswith("stop")] + [f"stop and remove {unit} if present"]
                results[rh] = StepResult(Status.CHANGED if what else Status.OK,
                                         ("would " + "; ".join(what)) if what else "nothing registered")
                return results
            done: list[str] = []
            if listed:
                ctx.progress(rh, f"deregistering {len(listed)} replica(s)")
                reply = router_api(ctx.run, ctx.inventory, topo, [["remove", listed, 30]], "deregister replicas", 60)
                if not reply.ok:
                    return {**results, rh: StepResult(Status.FAILED, message=f"router {topo.router.url}: {reply.error}")}
                done.append(f"deregistered {', '.join(listed)}")
            if remove:
                present, _, res = remove_router(ctx.run, ctx.inventory, rh)
                if res is not None and not res.ok:
                    return {**results, rh: StepResult(Status.FAILED, message=f"stopping {unit} failed", tail=res.tail())}
                if present:
                    done.append(f"stopped and removed {unit}")
        except TransportError as e:
            return {**results, rh: StepResult(Status.UNREACHABLE, message=e.message, hint=e.hint)}
        results[rh] = StepResult(Status.CHANGED if done else Status.OK, "; ".join(done) or "nothing of the router here")
        return results


@dataclass(frozen=True)
class RouterStatus:
    host: str
    url: str
    unit: str
    unit_state: str  # the service's state (``RankState.state``), or why it could not be read
    state: RouterState
    missing: tuple[int, ...]  # replicas the router does not hold
    unhealthy: tuple[int, ...]  # replicas the router holds but reports unhealthy
    unknown: tuple[str, ...]  # worker URLs the topology does not know

    @property
    def ok(self) -> bool:
        return (self.unit_state == "active" and bool(self.state.ready) and not self.missing
                and not self.unhealthy)

    def replica_of(self, url: str) -> int | None:
        return self._index.get(url)

    @property
    def _index(self) -> dict[str, int]:
        return dict(self._urls)

    _urls: tuple[tuple[str, int], ...] = ()


def router_status(run: Runner, inventory: Inventory, topology: Topology) -> RouterStatus:
    """The router's service state, /readiness and workers, matched against the replicas."""
    assert topology.router is not None
    unit = router_target(inventory)
    host = topology.router.node.name
    try:
        unit_state = service_state(run, inventory, host).state
        st = router_state(run, inventory, topology)
    except TransportError as e:
        unit_state, st = "unreachable", RouterState(False, None, "", (), e.message)
    urls = tuple((rep.endpoint, rep.index) for rep in topology.replicas)
    missing = tuple(i for u, i in urls if st.worker(u) is None)
    unhealthy = tuple(i for u, i in urls if (w := st.worker(u)) is not None and not w.healthy)
    known = {u for u, _ in urls}
    return RouterStatus(host, topology.router.url, unit, unit_state, st, missing, unhealthy,
                        tuple(w.url for w in st.workers if w.url not in known), urls)
