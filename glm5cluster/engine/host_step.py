"""One task step on one host: its facts (from the segment's prefetch, or read right before it),
its plan, and its commands; and the prefetch itself: the facts of every task step up to the next
procedure, read in one round trip per host (see ``engine/runner.py``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from glm5cluster.commands import Secret, Shell, Upload
from glm5cluster.connect.pool import FanOutTimeout, fan_out
from glm5cluster.engine.events import Event, EventKind
from glm5cluster.engine.playbook import Step
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.engine.run_state import Run
from glm5cluster.engine.selection import select
from glm5cluster.errors import GlmError, TransportError
from glm5cluster.facts.base import FactError
from glm5cluster.facts.batch import FactBatch
from glm5cluster.tasks.base import Change, Fail, NoOp, Skip


def segment(steps: Sequence[Step], pos: int) -> list[Step]:
    """The task steps from ``pos`` up to the next procedure."""
    out = []
    for step in steps[pos:]:
        if step.is_procedure:
            break
        out.append(step)
    return out


def prefetch(run: Run, hosts: list[str], segment: list[Step], check: bool) -> None:
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
        cmd = privileged_cmd(batch.command(), privileged)
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


def emit_done(run: Run, step: Step, host: str, result: StepResult) -> None:
    run.events(Event(EventKind.HOST_FINISHED, step.index, step.name, host, result=result))
    if run.log is not None:
        line = f"[{step.name}] => {result.status.value}: {result.summary or result.message}"
        run.log.write(host, line + (f"\n{result.diff}" if result.diff else ""))


def error_result(error: BaseException, duration: float) -> StepResult:
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


def privileged_cmd(cmd: Shell | Upload, privileged: bool) -> Shell | Upload:
    return dataclasses.replace(cmd, sudo=True) if privileged and not cmd.sudo else cmd


def run_task(run: Run, step: Step, host: str, check: bool) -> StepResult:
    run.events(Event(EventKind.HOST_STARTED, step.index, step.name, host))
    start = time.monotonic()
    try:
        result = plan_and_apply(run, step, host, check, start)
    except Exception as e:  # noqa: BLE001 - every host gets a result (an interrupt escapes)
        result = error_result(e, time.monotonic() - start)
    result = dataclasses.replace(result, duration=time.monotonic() - start)
    emit_done(run, step, host, result)
    return result


def plan_and_apply(run: Run, step: Step, host: str, check: bool, start: float) -> StepResult:
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
        cmd = privileged_cmd(batch.command(), privileged)
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
        cmd = privileged_cmd(command, privileged)
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
                              exit_code=res.exit_code, tail=mask(run, res.tail()),
                              command=cmd.display())
    return StepResult(Status.CHANGED, outcome.summary, diff=outcome.diff)


def mask(run: Run, text: str) -> str:
    return run.log.mask(text) if run.log is not None else text
