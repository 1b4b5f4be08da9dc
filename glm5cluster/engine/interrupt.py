"""Ctrl-C during a run: in-flight commands end, the procedures' cleanups run on fresh
connections, and the report says where each host was (see ``engine/runner.py``)."""

from __future__ import annotations

from glm5cluster.engine.events import Event, EventKind
from glm5cluster.engine.playbook import Step
from glm5cluster.engine.report import INTERRUPTED, RunReport, Status, StepReport, StepResult
from glm5cluster.engine.run_state import Run


def interrupted(run: Run, report: RunReport, step: Step, sr: StepReport, step_hosts: list[str],
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
    run_cleanups(run)
    for h in report.hosts:
        done = [s.name for s in report.steps if (r := s.results.get(h)) is not None and not r.failed]
        last = f"last completed step {done[-1]!r}" if done else "no step completed"
        if h in step_hosts:
            report.host_state[h] = f"in step {step.name!r} when interrupted (may be partly done); {last}"
        elif h in alive:
            report.host_state[h] = f"not started on step {step.name!r}; {last}"
        else:
            report.host_state[h] = f"stopped earlier; {last}"


def run_cleanups(run: Run) -> None:
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
