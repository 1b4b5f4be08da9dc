"""The rollout loop (see ``rollout.py`` for the per-group steps): observe every group, refuse
what a rollout cannot do safely, then roll the groups that need it in batches of
``max_unavailable``, stopping at the first group that fails. Ctrl-C leaves every group either
serving and registered or out of the router, and says which; the next rollout resumes (a group
out of the router is rolled first)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.connect.pool import ConnectionPool, fan_out
from glm5cluster.engine.events import EventSink
from glm5cluster.engine.playbook import Playbook
from glm5cluster.engine.procedures.rollout import (
    GroupPlan,
    drain_head,
    first_failure,
    observe,
    save_applied,
    stop_group,
    wanted_ranks,
)
from glm5cluster.engine.procedures.router import put_in, router_state, take_out
from glm5cluster.engine.runlog import RunLog
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.errors import GlmError, InputError, TransportError
from glm5cluster.model.loader import LoadedInventory
from glm5cluster.topology import Replica, Topology

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RolloutOptions:
    check: bool = False
    max_unavailable: int = 1
    drain_timeout: float = 300.0
    allow_downtime: bool = False
    ready_timeout: float | None = None
    forks: int = 32
    register_timeout: float = 300.0


@dataclass
class Progress:
    """Where each group is, for the report after a failure or Ctrl-C."""

    state: dict[int, str] = field(default_factory=dict)

    def set(self, index: int, what: str) -> None:
        self.state[index] = what


def plan_groups(run: Callable[[str, Shell], CommandResult], loaded: LoadedInventory, topo: Topology,
                forks: int) -> list[GroupPlan]:
    inv = loaded.inventory
    in_router: dict[str, bool] = {}
    if topo.router is not None:
        st = router_state(run, inv, topo)
        if not st.live:
            raise GlmError(f"the router {topo.router.url} does not answer: {st.error}",
                           hint="`glm5cluster up INV` starts it; a rollout needs the router to take groups out")
        in_router = {w.url: w.healthy for w in st.workers}
    got = fan_out([str(r.index) for r in topo.replicas], lambda i: observe(
        run, inv, topo, topo.replicas[int(i)],
        None if topo.router is None else in_router.get(topo.replicas[int(i)].endpoint, False)), forks, None)
    plans = []
    for i, hr in sorted(got.items(), key=lambda kv: int(kv[0])):
        if hr.error is not None:
            if isinstance(hr.error, TransportError):
                raise GlmError(f"replica {i}: {hr.error.message}", hint=hr.error.hint)
            raise hr.error
        assert hr.value is not None
        plans.append(hr.value)
    return plans


def refuse(plans: Sequence[GroupPlan], topo: Topology, opts: RolloutOptions, inv_path: str) -> None:
    """What a rollout must not do without being told: no serving group left, a re-plan."""
    reshaped = [p for p in plans if p.reshaped]
    if reshaped:
        raise InputError("the replica groups changed shape, which a rollout cannot do in place: "
                         + "; ".join(f"replica {p.index}: {p.reshaped}" for p in reshaped),
                         hint=f"re-plan: `glm5cluster down {inv_path}` then `glm5cluster up {inv_path}` "
                              "(or keep tp and the host order as they are)")
    n = len(topo.replicas)
    todo = [p for p in plans if p.rolls]
    if not todo or opts.allow_downtime:
        return
    if n == 1:
        raise InputError("this cluster has a single replica: replacing it stops serving until the new one is "
                         "ready, because no other replica can take the requests meanwhile",
                         hint="re-run with --allow-downtime to accept that, or add hosts for a second replica")
    if opts.max_unavailable >= n:
        raise InputError(f"--max-unavailable {opts.max_unavailable} would take all {n} replicas out of the router "
                         "at once: nothing would serve meanwhile",
                         hint=f"use --max-unavailable {n - 1} or lower, or --allow-downtime to accept the outage")


def roll_group(rep: Replica, loaded: LoadedInventory, topo: Topology, pool: ConnectionPool, pb: Playbook,
               opts: RolloutOptions, events: EventSink, log: RunLog | None, prog: Progress, echo: Echo) -> str:
    """One group: out, drained, stopped, changed, started, ready, smoke, back in. Raises GlmError."""
    inv = loaded.inventory

    def run(host: str, cmd: Shell) -> CommandResult:
        res = pool.get(host).run(cmd)
        if log is not None:
            log.command(host, cmd, res)
        return res

    t0 = time.monotonic()
    i = rep.index
    if topo.router is not None:
        prog.set(i, "out of the router (deregistering)")
        reply = take_out(run, inv, topo, [rep])
        if not reply.ok:
            raise GlmError(f"replica {i}: taking it out of the router failed: {reply.error}")
        prog.set(i, "out of the router")
    echo(f"replica {i}: out of the router; draining node 0 (up to {opts.drain_timeout:.0f}s)")
    drained = drain_head(run, inv, rep, opts.drain_timeout)
    echo(f"replica {i}: {drained}; stopping the group (node 0 first)")
    prog.set(i, "out of the router, stopping")
    stop_group(run, wanted_ranks(inv, topo, rep), opts.forks)
    prog.set(i, "out of the router, stopped (being changed)")
    hosts = tuple(r.node.name for r in rep.ranks)
    report = run_playbook(pb, inv, loaded.nodes, pool, RunOptions(limit=hosts, forks=opts.forks),
                          events, log, confirm=None, topology=topo)
    if report.exit_code != 0:
        prog.set(i, "out of the router, FAILED")
        raise GlmError(f"replica {i} ({', '.join(hosts)}) failed: {first_failure(report)}",
                       hint="no other replica was touched; `glm5cluster rollout INV --rollback` brings this one "
                            "back to the inventory last applied, or fix the cause and re-run `glm5cluster rollout INV`")
    if topo.router is not None:
        prog.set(i, "serving, registering with the router")
        reply = put_in(run, inv, topo, [rep], opts.register_timeout)
        if not reply.ok:
            prog.set(i, "serving but out of the router")
            raise GlmError(f"replica {i} serves but the router does not take it: {reply.error}",
                           hint="the router must reach node 0's /health; see `glm5cluster status INV`")
    prog.set(i, "serving, in the router" if topo.router is not None else "serving")
    return f"replica {i}: rolled in {time.monotonic() - t0:.0f}s ({drained})"


def run_rollout(loaded: LoadedInventory, topo: Topology, pool: ConnectionPool, pb: Playbook, opts: RolloutOptions,
                events: EventSink, log: RunLog | None, echo: Echo, inv_path: str) -> int:
    """Exit code: 0 all groups as the inventory says and serving, 1 a group failed."""

    def run(host: str, cmd: Shell) -> CommandResult:
        return pool.get(host).run(cmd)

    plans = plan_groups(run, loaded, topo, opts.forks)
    for p in plans:
        tag = "roll" if p.rolls else "keep"
        echo(f"replica {p.index} ({', '.join(p.hosts)}): {tag}: {p.why()}" + (f"; RESHAPED: {p.reshaped}" if p.reshaped else ""))
    refuse(plans, topo, opts, inv_path)
    todo = sorted((p for p in plans if p.rolls), key=lambda p: (p.registered is not False, p.index))
    if opts.check:
        echo(f"check: {len(todo)} replica group(s) would roll, {opts.max_unavailable} at a time"
             if todo else "check: nothing would roll")
        return 0
    if not todo:
        echo("nothing to roll: every replica runs what the inventory says" + (" and is in the router" if topo.router else ""))
        save_applied(loaded)
        return 0
    if topo.router is None and len(topo.replicas) > 1:
        echo("note: no replicas.router: clients of a replica see it down while it rolls")
    prog = Progress({p.index: ("serving, in the router" if p.registered else "out of the router"
                               if p.registered is False else "serving") for p in plans})
    batches = [todo[k:k + opts.max_unavailable] for k in range(0, len(todo), opts.max_unavailable)]
    t0 = time.monotonic()
    try:
        for batch in batches:
            failed: list[BaseException] = []
            if len(batch) == 1:  # in this thread, so that Ctrl-C stops it where it is
                try:
                    echo(roll_group(topo.replicas[batch[0].index], loaded, topo, pool, pb, opts, events, log,
                                    prog, echo))
                except (GlmError, TransportError) as e:
                    failed.append(e)
            else:
                got = fan_out([str(p.index) for p in batch], lambda i: roll_group(
                    topo.replicas[int(i)], loaded, topo, pool, pb, opts, events, log, prog, echo), opts.forks, None)
                for _i, hr in sorted(got.items()):
                    if hr.error is None:
                        echo(str(hr.value))
                    else:
                        failed.append(hr.error)
            if failed:
                for err in failed:
                    echo(f"FAILED: {getattr(err, 'message', err)}")
                    if getattr(err, "hint", None):
                        echo(f"hint: {err.hint}")  # type: ignore[attr-defined]
                summary(prog, echo)
                return 1
    except KeyboardInterrupt:
        echo("interrupted: each replica group is left as follows (`glm5cluster rollout INV` resumes):")
        summary(prog, echo)
        raise
    echo(f"rollout done: {len(todo)} replica group(s) in {time.monotonic() - t0:.0f}s")
    summary(prog, echo)
    save_applied(loaded)
    return 0


def summary(prog: Progress, echo: Echo) -> None:
    for i in sorted(prog.state):
        echo(f"  replica {i}: {prog.state[i]}")
