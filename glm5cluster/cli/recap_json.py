"""``--format json`` for the runs (``run``, ``up``, ``down``): one object on stdout, progress and
the text recap on stderr.

The object: the run (playbook, check, applied, exit code, why it stopped, log directory), each
step's result per host (status, summary, message, hint, exit code, seconds), and per host the
counts (ok/changed/failed/skipped/unreachable) and its final ``state``: ``converged`` (nothing to
change), ``changed``, ``would-change`` (``--check``), ``failed`` (with the step and cause),
``unreachable``, ``interrupted`` or ``stopped`` (its steps were cut short because of others),
with ``where``: the last step it completed (after Ctrl-C, where the run left it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from glm5cluster.engine.report import INTERRUPTED, RunReport, Status, StepResult

F = TypeVar("F", bound=Callable[..., Any])


def format_option(fn: F) -> F:
    return click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                        help="json: one object on stdout (per host: counts, each step's result and its final "
                             "state); progress and the text recap go to stderr.")(fn)


def progress_stream(fmt: str) -> Any:
    """Where the live/plain progress goes: stdout for text, stderr under json."""
    return sys.stderr if fmt == "json" else sys.stdout


def _result(r: StepResult) -> dict[str, Any]:
    doc: dict[str, Any] = {"status": r.status.value, "summary": r.summary, "seconds": round(r.duration, 3)}
    if r.failed:
        doc.update(message=r.message, hint=r.hint, exit_code=r.exit_code)
    return doc


def host_state(report: RunReport, host: str) -> dict[str, Any]:
    rc = report.recap(host)
    done = [s.name for s in report.steps
            if (r := s.results.get(host)) is not None and r.status in (Status.OK, Status.CHANGED)]
    changed = rc.counts.get(Status.CHANGED, 0) > 0
    doc: dict[str, Any] = {"counts": {s.value: rc.counts.get(s, 0) for s in Status},
                           "seconds": round(rc.duration, 3),
                           "where": report.host_state.get(host)
                           or (f"last completed step {done[-1]!r}" if done else "no step completed")}
    if rc.first_failure is not None:
        step, r = rc.first_failure
        state = ("interrupted" if r.message == INTERRUPTED else
                 "unreachable" if r.status is Status.UNREACHABLE else "failed")
        doc.update(state=state, failed_step=step, message=r.message, hint=r.hint)
    elif rc.stopped:
        doc.update(state="stopped", message=rc.stopped)
    elif report.check or not report.applied and changed:
        doc["state"] = "would-change" if changed else "converged"
    else:
        doc["state"] = "changed" if changed else "converged"
    return doc


def report_doc(command: str, report: RunReport, log_dir: str | None = None) -> dict[str, Any]:
    return {
        "command": command,
        "playbook": report.playbook,
        "check": report.check,
        "applied": report.applied,
        "exit_code": report.exit_code,
        "aborted": report.aborted,
        "interrupted": report.interrupted,
        "seconds": round(report.duration, 3),
        "log_dir": log_dir,
        "hosts": {h: host_state(report, h) for h in report.hosts},
        "steps": [{"index": s.index, "name": s.name, "task": s.task, "seconds": round(s.duration, 3),
                   "results": {h: _result(r) for h, r in s.results.items()}} for s in report.steps],
    }


def emit(doc: dict[str, Any]) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()
