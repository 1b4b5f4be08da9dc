"""Plan, show, confirm, apply, step by step over a bounded thread pool.

``run_playbook`` is the one entry point:

- ``options.check``: plan every step on every host, change nothing (the report's CHANGED
  results are what *would* change).
- ``confirm`` given (interactive runs without ``--yes``): a plan pass first; when it finds
  changes, ``confirm(plan_report)`` decides; the apply pass then re-reads facts right before
  each step. When the plan finds nothing to change, the plan pass is the run.
- ``confirm`` None (``--yes``): apply directly, still planning each step right before it.

Fail policy: a failed or unreachable host runs none of its later steps; when a replica's head
fails, the replica's other hosts stop too; more than ``max_fail`` failed hosts abort the run.

Ctrl-C (``KeyboardInterrupt`` in the calling thread, or ``Interrupted`` from the pool): no new
step or host starts, the pool closes every connection (in-flight commands end), the cleanups that
procedures registered (``ClusterContext.on_interrupt``: ephemeral keys, weights agents) run on
fresh connections, and the report says where every host was (``report.interrupted``, exit 130).

Round trips: at the start of each run of consecutive task steps (up to the next procedure) the
facts of *all* those steps are read per host in one command (``host_step.prefetch``; identical facts are
read once). A step plans from that snapshot only while nothing has been applied on the host since
it was read; after the first change on a host, each later step re-reads its facts right before it
runs. A converged host therefore costs one round trip for the whole playbook.

The code: this module drives the passes and the fail policy; ``run_state`` holds the run,
``host_step`` one task step on one host (and the prefetch), ``interrupt`` the Ctrl-C path.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from glm5cluster.connect.pool import ConnectionPool, fan_out
from glm5cluster.engine.events import Event, EventKind, EventSink, null_sink
from glm5cluster.engine.host_step import emit_done, error_result, prefetch, run_task, segment
from glm5cluster.engine.interrupt import interrupted
from glm5cluster.engine.playbook import Playbook, Step
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.report import RunReport, Status, StepReport, StepResult
from glm5cluster.engine.run_state import ContextFactory, Run, RunOptions
from glm5cluster.engine.runlog import RunLog
from glm5cluster.engine.selection import check_selector, limit_hosts, plan_topology_or_none, select
from glm5cluster.errors import Interrupted
from glm5cluster.model.nodes import Node
from glm5cluster.tasks.base import HostContext

__all__ = ["Confirm", "ContextFactory", "RunOptions", "run_playbook"]

Confirm = Callable[[RunReport], bool]


def run_playbook(playbook: Playbook, inventory: Any, nodes: Sequence[Node], pool: ConnectionPool,
                 options: RunOptions | None = None, events: EventSink = null_sink,
                 log: RunLog | None = None, confirm: Confirm | None = None,
                 context: ContextFactory | None = None, topology: Any = ...) -> RunReport:
    """Run ``playbook`` on ``nodes`` (after ``--limit``) and return the report of the last pass."""
    options = options or RunOptions()
    topo = plan_topology_or_none(inventory, nodes) if topology is ... else topology
    hosts = limit_hosts(nodes, options.limit)
    for step in playbook.steps:
        check_selector(step.hosts, nodes, topo, step.name)

    def default_context(node: Node, check: bool) -> HostContext:
        return HostContext(node=node, inventory=inventory, check=check)

    run = Run(playbook, inventory, {n.name: n for n in nodes}, pool, options, events, log, topo,
               context or default_context)
    events(Event(EventKind.RUN_STARTED, message=playbook.name, hosts=tuple(hosts)))
    if options.check:
        report = _execute(run, hosts, check=True)
    elif confirm is not None:
        report = _execute(run, hosts, check=True)
        if report.changes and not report.aborted:
            if confirm(report):
                report = _execute(run, hosts, check=False)
            else:
                report.aborted = "not confirmed: nothing was changed"
        else:
            report.check = False
    else:
        report = _execute(run, hosts, check=False)
    report.log_dir = log.dir if log else None
    events(Event(EventKind.RUN_FINISHED, message=playbook.name, hosts=tuple(hosts)))
    return report


def _execute(run: Run, hosts: list[str], check: bool) -> RunReport:
    report = RunReport(run.playbook.name, list(hosts), check=check, applied=not check)
    run.events(Event(EventKind.PHASE, message="plan" if check else "apply", hosts=tuple(hosts)))
    alive = list(hosts)
    start = time.monotonic()
    steps = run.playbook.steps
    for pos, step in enumerate(steps):
        sr = StepReport(step.index, step.name, step.task_name)
        step_hosts: list[str] = []
        t0 = time.monotonic()
        try:
            if run.pool.stopping:
                raise Interrupted()
            if pos == 0 or steps[pos - 1].is_procedure:
                prefetch(run, alive, segment(steps, pos), check)
            step_hosts = [h for h in alive if select(step.hosts, run.nodes[h], run.topology)]
            report.steps.append(sr)
            if not step_hosts:
                continue
            run.events(Event(EventKind.STEP_STARTED, step.index, step.name, hosts=tuple(step_hosts)))
            if step.is_procedure:
                sr.results = _run_procedure(run, step, step_hosts, check)
            else:
                got = fan_out(step_hosts, lambda h, s=step: run_task(run, s, h, check),  # type: ignore[misc]
                              run.options.forks, run.options.step_timeout)
                for h, hr in got.items():
                    if hr.error is not None:
                        sr.results[h] = error_result(hr.error, hr.duration)
                        emit_done(run, step, h, sr.results[h])
                    else:
                        assert hr.value is not None
                        sr.results[h] = hr.value
            if run.pool.stopping:  # interrupted while the last hosts finished
                raise Interrupted()
        except KeyboardInterrupt:
            if sr not in report.steps:
                report.steps.append(sr)
            sr.duration = time.monotonic() - t0
            interrupted(run, report, step, sr, step_hosts, alive)
            break
        sr.duration = time.monotonic() - t0
        run.events(Event(EventKind.STEP_FINISHED, step.index, step.name, hosts=tuple(step_hosts)))
        alive = _apply_fail_policy(run, report, step, sr, alive)
        failed = len(report.failed_hosts())
        if run.options.max_fail is not None and failed > run.options.max_fail:
            report.aborted = (f"{failed} host(s) failed, more than --max-fail {run.options.max_fail}: "
                              f"stopped after step {step.name!r}")
            break
    report.duration = time.monotonic() - start
    return report


def _apply_fail_policy(run: Run, report: RunReport, step: Step, sr: StepReport,
                       alive: list[str]) -> list[str]:
    dead: set[str] = set()
    for host, r in sr.results.items():
        if not r.failed:
            continue
        dead.add(host)
        placed = run.topology.replica_of(host) if run.topology is not None else None
        if placed is not None and placed[1].is_head:
            replica = placed[0]
            for rank in replica.ranks:
                other = rank.node.name
                if other != host and other in alive and other not in dead:
                    dead.add(other)
                    report.stopped[other] = (f"stopped: head {host} of replica {replica.index} "
                                             f"{r.status.value} at step {step.name!r}")
    return [h for h in alive if h not in dead]


def _run_procedure(run: Run, step: Step, hosts: list[str], check: bool) -> dict[str, StepResult]:
    deadline = time.monotonic() + run.options.step_timeout if run.options.step_timeout else None
    ctx = ClusterContext(tuple(hosts), run.nodes, run.inventory, run.topology, check, deadline,
                         step.name, step.index, run.options.forks, run.pool, run.events, run.log,
                         allow_reboot=run.options.allow_reboot, verify_weights=run.options.verify_weights,
                         _cleanups=run.cleanups)
    for h in hosts:
        run.events(Event(EventKind.HOST_STARTED, step.index, step.name, h))
    start = time.monotonic()
    run.cache.clear()
    try:
        got = dict(step.task.run(step.params, ctx))
    except Exception as e:  # noqa: BLE001 - every host gets a result (an interrupt escapes)
        err = error_result(e, time.monotonic() - start)
        got = {h: err for h in hosts}
    if not run.pool.stopping:
        run.cleanups.clear()  # the procedure ended by itself: its own finally cleaned up
    results: dict[str, StepResult] = {}
    for h in hosts:
        r = got.get(h) or StepResult(Status.FAILED, message=f"procedure {step.task_name} gave no result")
        if not r.duration:
            r = dataclasses.replace(r, duration=time.monotonic() - start)
        results[h] = r
        emit_done(run, step, h, r)
    return results
