"""What a run did: per step, per host, one ``StepResult``; and the recap per host."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

INTERRUPTED = "interrupted (Ctrl-C) while this step ran: it may be partly done"


class Status(StrEnum):
    OK = "ok"  # already in the wanted state (no-op)
    CHANGED = "changed"  # changed (or, in check mode, would change)
    FAILED = "failed"  # a command failed, a fact could not be read, or the task refused
    SKIPPED = "skipped"  # the step does not apply to the host, or the host was stopped
    UNREACHABLE = "unreachable"  # the transport failed (host down, refused, timed out)


@dataclass(frozen=True)
class StepResult:
    """One host's result for one step. ``summary`` is the task's change summary or no-op reason;
    for failures ``message`` says what went wrong and ``exit_code``/``tail`` come from the
    failing command when there was one."""

    status: Status
    summary: str = ""
    duration: float = 0.0
    diff: str | None = None
    message: str = ""
    hint: str | None = None
    exit_code: int | None = None
    tail: str = ""
    command: str = ""

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.UNREACHABLE)


@dataclass
class StepReport:
    index: int
    name: str
    task: str
    results: dict[str, StepResult] = field(default_factory=dict)
    duration: float = 0.0


@dataclass(frozen=True)
class HostRecap:
    host: str
    counts: Mapping[Status, int]
    duration: float
    first_failure: tuple[str, StepResult] | None  # (step name, result)
    stopped: str | None  # why later steps did not run on this host

    @property
    def failed(self) -> bool:
        return self.counts.get(Status.FAILED, 0) > 0 or self.counts.get(Status.UNREACHABLE, 0) > 0

    @property
    def unreachable(self) -> bool:
        return self.counts.get(Status.UNREACHABLE, 0) > 0


@dataclass
class RunReport:
    """Everything a run did. ``exit_code`` is 0 when no host failed, 130 after Ctrl-C, else 1."""

    playbook: str
    hosts: list[str]
    check: bool = False
    steps: list[StepReport] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)  # host -> why it stopped early
    aborted: str | None = None  # why the whole run stopped early
    log_dir: str | None = None
    duration: float = 0.0
    applied: bool = False  # False when only a plan was made (check mode, refused confirmation)
    interrupted: bool = False  # Ctrl-C: ``aborted`` says during which step; exit code 130
    host_state: dict[str, str] = field(default_factory=dict)  # after an interrupt: where each host is

    @property
    def changes(self) -> int:
        return sum(1 for s in self.steps for r in s.results.values() if r.status is Status.CHANGED)

    def failed_hosts(self) -> list[str]:
        return [h for h in self.hosts if self.recap(h).failed]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed_hosts() or self.aborted else 0

    def recap(self, host: str) -> HostRecap:
        counts = {s: 0 for s in Status}
        duration = 0.0
        first: tuple[str, StepResult] | None = None
        for step in self.steps:
            r = step.results.get(host)
            if r is None:
                continue
            counts[r.status] += 1
            duration += r.duration
            if r.failed and first is None:
                first = (step.name, r)
        return HostRecap(host, counts, duration, first, self.stopped.get(host))

    def recaps(self) -> list[HostRecap]:
        return [self.recap(h) for h in self.hosts]
