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
facts of *all* those steps are read per host in one command (``_prefetch``; identical facts are
read once). A step plans from that snapshot only while nothing has been applied on the host since
it was read; after the first change on a host, each later step re-reads its facts right before it
runs. A converged host therefore costs one round trip for the whole playbook.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glm5cluster.commands import Secret, Shell, Upload
from glm5cluster.connect.pool import ConnectionPool, FanOutTimeout, fan_out
from glm5cluster.engine.events import Event, EventKind, EventSink, null_sink
from glm5cluster.engine.playbook import Playbook, Step
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.report import INTERRUPTED, RunReport, Status, StepReport, StepResult
from glm5cluster.engine.runlog import RunLog
from glm5cluster.engine.selection import check_selector, limit_hosts, plan_topology_or_none, select
from glm5cluster.errors import GlmError, Interrupted, TransportError
from glm5cluster.facts.base import FactError
from glm5cluster.facts.batch import FactBatch
from glm5cluster.model.nodes import Node
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Skip

Confirm = Callable[[RunReport], bool]
ContextFactory = Callable[[Node, bool], HostContext]


@dataclass(frozen=True)
class RunOptions:
    check: bool = False
    limit: tuple[str, ...] = ()
    max_fail: int | None = None
    forks: int = 20
    step_timeout: float | None = None  # per step, all hosts together
    allow_reboot: bool = False  # procedures may reboot hosts (gpu.reboot); CLI --allow-reboot
    verify_weights: bool = False  # weights.stage re-hashes every file; CLI --verify-weights


@dataclass
class _Run:
    playbook: Playbook
    inventory: Any
    nodes: dict[str, Node]
    pool: ConnectionPool
    options: RunOptions
    events: EventSink
    log: RunLog | None
    topology: Any
    context: ContextFactory
    cache: dict[str, dict[int, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)
    cache_errors: dict[str, BaseException] = dataclasses.field(default_factory=dict)
    dirty: set[str] = dataclasses.field(default_factory=set)  # hosts changed since the prefetch
    cleanups: list[Callable[[], None]] = dataclasses.field(default_factory=list)  # on interrupt


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

    run = _Run(playbook, inventory, {n.name: n for n in nodes}, pool, options, events, log, topo,
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


def _execute(run: _Run, hosts: list[str], check: bool) -> RunReport:
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
                _prefetch(run, alive, _segment(steps, pos), check)
            step_hosts = [h for h in alive if select(step.hosts, run.nodes[h], run.topology)]
            report.steps.append(sr)
            if not step_hosts:
                continue
            run.events(Event(EventKind.STEP_STARTED, step.index, step.name, hosts=tuple(step_hosts)))
            if step.is_procedure:
                sr.results = _run_procedure(run, step, step_hosts, check)
            else:
                got = fan_out(step_hosts, lambda h, s=step: _run_task(run, s, h, check),  # type: ignore[misc]
                              run.options.forks, run.options.step_timeout)
                for h, hr in got.items():
                    if hr.error is not None:
                        sr.results[h] = _error_result(hr.error, hr.duration)
                        _emit_done(run, step, h, sr.results[h])
                    else:
                        assert hr.value is not None
                        sr.results[h] = hr.value
            if run.pool.stopping:  # interrupted while the last hosts finished
                raise Interrupted()
        except KeyboardInterrupt:
            if sr not in report.steps:
                report.steps.append(sr)
            sr.duration = time.monotonic() - t0
            _interrupted(run, report, step, sr, step_hosts, alive)
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


def _interrupted(run: _Run, report: RunReport, step: Step, sr: StepReport, step_hosts: list[str],
                 alive: list[str]) -> None:
    """Ctrl-C during ``step``: end in-flight commands, run the cleanups, record each host's state."""
    run.pool.interrupt()
    for h in step_hosts:
        r = sr.results.get(h)
        if r is None or r.failed:  # abandoned, or failed because its connection was closed
            sr.results[h] = StepResult(Status.FAILED, message=INTERRUPTED,
                                       hint="a re-run picks up from the state the host is in")
    report.aborted = f"interrupted (Ctrl-C) during step {step.name!r}"
    report.interrupted = True
    run.events(Event(EventKind.RUN_INTERRUPTED, step.index, step.name, message=report.aborted,
                     hosts=tuple(step_hosts)))
    _run_cleanups(run)
    for h in report.hosts:
        done = [s.name for s in report.steps if (r := s.results.get(h)) is not None and not r.failed]
        last = f"last completed step {done[-1]!r}" if done else "no step completed"
        if h in step_hosts:
            report.host_state[h] = f"in step {step.name!r} when interrupted (may be partly done); {last}"
        elif h in alive:
            report.host_state[h] = f"not started on step {step.name!r}; {last}"
        else:
            report.host_state[h] = f"stopped earlier; {last}"


def _run_cleanups(run: _Run) -> None:
    """The procedures' interrupt cleanups, newest first, on fresh connections."""
    with run.pool.cleanup():
        while run.cleanups:
            fn = run.cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - one cleanup failing must not stop the others
                if run.log is not None:
                    for h in run.nodes:
                        run.log.write(h, f"cleanup after interrupt failed: {e}")
                        break


def _segment(steps: Sequence[Step], pos: int) -> list[Step]:
    """The task steps from ``pos`` up to the next procedure."""
    out = []
    for step in steps[pos:]:
        if step.is_procedure:
            break
        out.append(step)
    return out


def _prefetch(run: _Run, hosts: list[str], segment: list[Step], check: bool) -> None:
    """Read the facts of every step of ``segment`` in one round trip per host (see module doc)."""
    run.cache.clear()
    run.cache_errors.clear()
    run.dirty.clear()
    if not segment or not hosts:
        return

    def one(host: str) -> dict[int, Mapping[str, Any]]:
        node = run.nodes[host]
        ctx = run.context(node, check)
        wanted: dict[str, Any] = {}
        per_step: dict[int, dict[str, str]] = {}
        privileged = False
        for step in segment:
            if not select(step.hosts, node, run.topology):
                continue
            facts = step.task.facts(step.params, ctx)
            per_step[step.index] = {}
            for key, fact in facts.items():
                fkey = fact.key()
                wanted.setdefault(fkey, fact)
                per_step[step.index][key] = fkey
            privileged |= bool(facts) and bool(getattr(step.task, "privileged", True))
        if not wanted:
            return {i: {} for i in per_step}
        try:
            batch = FactBatch(wanted)
        except ValueError:  # a fact needs env or stdin: read step by step
            return {}
        cmd = _privileged(batch.command(), privileged)
        assert isinstance(cmd, Shell)
        res = run.pool.get(host).run(cmd)
        if run.log is not None:
            run.log.command(host, cmd, res)
        if not res.ok:
            return {}  # each step re-reads and reports the problem itself
        try:
            parsed = batch.parse(res)
        except Exception:  # noqa: BLE001 - the step that owns the fact reports it
            return {}
        return {i: {k: parsed[f] for k, f in keys.items()} for i, keys in per_step.items()}

    for host, hr in fan_out(hosts, one, run.options.forks, run.options.step_timeout).items():
        if hr.error is not None:
            if isinstance(hr.error, GlmError):
                run.cache_errors[host] = hr.error
        elif hr.value:
            run.cache[host] = hr.value


def _apply_fail_policy(run: _Run, report: RunReport, step: Step, sr: StepReport,
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


def _emit_done(run: _Run, step: Step, host: str, result: StepResult) -> None:
    run.events(Event(EventKind.HOST_FINISHED, step.index, step.name, host, result=result))
    if run.log is not None:
        line = f"[{step.name}] => {result.status.value}: {result.summary or result.message}"
        run.log.write(host, line + (f"\n{result.diff}" if result.diff else ""))


def _error_result(error: BaseException, duration: float) -> StepResult:
    if isinstance(error, FanOutTimeout):
        return StepResult(Status.FAILED, duration=duration, message=error.message, hint=error.hint)
    if isinstance(error, TransportError):
        return StepResult(Status.UNREACHABLE, duration=duration, message=error.message, hint=error.hint)
    if isinstance(error, GlmError):  # e.g. HostKeyError: no trusted connection was made
        status = Status.UNREACHABLE if type(error).__name__ == "HostKeyError" else Status.FAILED
        return StepResult(status, duration=duration, message=error.message, hint=error.hint)
    if isinstance(error, FactError):
        return StepResult(Status.FAILED, duration=duration, message=str(error))
    return StepResult(Status.FAILED, duration=duration,
                      message=f"internal error: {type(error).__name__}: {error}",
                      hint="re-run with --debug and report this")


def _privileged(cmd: Shell | Upload, privileged: bool) -> Shell | Upload:
    return dataclasses.replace(cmd, sudo=True) if privileged and not cmd.sudo else cmd


def _run_task(run: _Run, step: Step, host: str, check: bool) -> StepResult:
    run.events(Event(EventKind.HOST_STARTED, step.index, step.name, host))
    start = time.monotonic()
    try:
        result = _plan_and_apply(run, step, host, check, start)
    except Exception as e:  # noqa: BLE001 - every host gets a result (an interrupt escapes)
        result = _error_result(e, time.monotonic() - start)
    result = dataclasses.replace(result, duration=time.monotonic() - start)
    _emit_done(run, step, host, result)
    return result


def _plan_and_apply(run: _Run, step: Step, host: str, check: bool, start: float) -> StepResult:
    conn = run.pool.get(host)
    ctx = run.context(run.nodes[host], check)
    privileged = bool(getattr(step.task, "privileged", True))
    if host in run.cache_errors:  # the prefetch could not reach the host: do not try twice
        raise run.cache_errors.pop(host)
    cached = run.cache.get(host, {}).get(step.index) if host not in run.dirty else None
    wanted = step.task.facts(step.params, ctx) if cached is None else {}
    facts: Mapping[str, Any] = cached or {}
    if wanted:
        batch = FactBatch(wanted)
        cmd = _privileged(batch.command(), privileged)
        assert isinstance(cmd, Shell)
        res = conn.run(cmd)
        if run.log is not None:
            run.log.command(host, cmd, res)
        if not res.ok:
            return StepResult(Status.FAILED, message="could not gather facts", exit_code=res.exit_code,
                              tail=res.tail(), command=cmd.display(),
                              hint="sudo -n needs passwordless sudo for this user" if "sudo" in res.stderr else None)
        facts = batch.parse(res)
    outcome = step.task.plan(step.params, ctx, facts)
    if isinstance(outcome, NoOp):
        return StepResult(Status.OK, outcome.reason)
    if isinstance(outcome, Skip):
        return StepResult(Status.SKIPPED, outcome.reason)
    if isinstance(outcome, Fail):
        return StepResult(Status.FAILED, message=outcome.message, hint=outcome.hint)
    if not isinstance(outcome, Change):  # pragma: no cover - a task bug
        raise TypeError(f"task {step.task_name} returned {outcome!r}")
    if check:
        return StepResult(Status.CHANGED, outcome.summary, diff=outcome.diff)
    run.dirty.add(host)  # later steps on this host re-read their facts
    for command in outcome.commands:
        cmd = _privileged(command, privileged)
        if isinstance(cmd, Shell):
            if isinstance(cmd.stdin, Secret) and run.log is not None:
                run.log.add_secret(cmd.stdin.value)
            res = conn.run(cmd)
        else:
            res = conn.put(cmd)
        if run.log is not None:
            run.log.command(host, cmd, res)
        if not res.ok:
            return StepResult(Status.FAILED, outcome.summary, diff=outcome.diff,
                              message=f"{cmd.display()} exited {res.exit_code}",
                              exit_code=res.exit_code, tail=_mask(run, res.tail()),
                              command=cmd.display())
    return StepResult(Status.CHANGED, outcome.summary, diff=outcome.diff)


def _mask(run: _Run, text: str) -> str:
    return run.log.mask(text) if run.log is not None else text


def _run_procedure(run: _Run, step: Step, hosts: list[str], check: bool) -> dict[str, StepResult]:
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
        err = _error_result(e, time.monotonic() - start)
        got = {h: err for h in hosts}
    if not run.pool.stopping:
        run.cleanups.clear()  # the procedure ended by itself: its own finally cleaned up
    results: dict[str, StepResult] = {}
    for h in hosts:
        r = got.get(h) or StepResult(Status.FAILED, message=f"procedure {step.task_name} gave no result")
        if not r.duration:
            r = dataclasses.replace(r, duration=time.monotonic() - start)
        results[h] = r
        _emit_done(run, step, h, r)
    return results
