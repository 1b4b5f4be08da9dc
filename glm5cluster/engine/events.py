"""The event stream a run emits (the CLI display consumes it; tests record it).

Sinks are called from worker threads: a sink must be thread-safe and quick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from glm5cluster.engine.report import StepResult


class EventKind(StrEnum):
    RUN_STARTED = "run_started"  # message: playbook name; hosts: every host of the run
    PHASE = "phase"  # message: "plan" or "apply"
    STEP_STARTED = "step_started"
    HOST_STARTED = "host_started"
    HOST_PROGRESS = "host_progress"  # message: what the host is doing now (procedures, commands)
    HOST_FINISHED = "host_finished"  # result set
    STEP_FINISHED = "step_finished"
    RUN_INTERRUPTED = "run_interrupted"  # Ctrl-C; message: during which step; cleanups follow
    RUN_FINISHED = "run_finished"


@dataclass(frozen=True)
class Transfer:
    """Bytes moved so far on one host: what a progress bar needs."""

    done: float
    total: float
    rate: float = 0.0  # bytes/s
    eta: float | None = None  # seconds


@dataclass(frozen=True)
class Event:
    kind: EventKind
    step_index: int = -1
    step: str = ""
    host: str = ""
    message: str = ""
    result: StepResult | None = None
    hosts: tuple[str, ...] = ()
    at: float = field(default_factory=time.monotonic)
    transfer: Transfer | None = None  # HOST_PROGRESS of a byte transfer (weights staging)


EventSink = Callable[[Event], None]


def null_sink(_: Event) -> None:
    return None


class EventRecorder:
    """A sink that keeps every event (tests)."""

    def __init__(self) -> None:
        import threading

        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]
