"""Cluster procedures: steps that orchestrate across hosts instead of planning each host alone.

A task (``tasks/base.py``) is a pure function of one host's facts. Some steps are not: waiting
until every rank of a replica is ready, fetching weights once and fanning them out node to node,
checking that every node reaches the head's dist-init port. Those are *procedures*:

    class ReadinessProcedure:
        name = "wait_ready"
        class Params(engine.procedure.Params):
            timeout: float = 3600

        def run(self, params, ctx: ClusterContext) -> dict[str, StepResult]:
            while not ctx.expired():
                got = ctx.fan_out(lambda h: ctx.run(h, Shell.cmd("curl", "-sf", url)))
                ...
                ctx.progress(host, "rank 1: loading weights")
            return {h: StepResult(Status.OK, "ready") for h in ctx.hosts}

Register it in ``engine/procedures/__init__.py`` (``PROCEDURES``); a playbook names it like a
task (``task: wait_ready``) and its params are validated at load time the same way.

The contract:
- ``run`` receives the step's hosts (after ``hosts:``, ``--limit`` and the fail policy) and must
  return a ``StepResult`` for **every** one of them (a missing host is recorded as failed).
- All I/O goes through ``ctx``: ``run``/``put`` on one host (through the run's connection pool,
  logged per host, secrets masked), ``fan_out`` over hosts (bounded by ``--forks``; each host's
  value or error), ``progress`` for the live display, ``deadline``/``expired`` for time limits.
- ``ctx.check`` is True under ``--check``: a procedure must then change nothing and report what
  it would do (``Status.CHANGED`` with a summary), or ``Status.SKIPPED`` when it cannot tell.
- A ``TransportError`` from ``ctx.run`` escaping ``run`` for a host marks only that host
  unreachable when the procedure catches it per host; an exception escaping ``run`` itself fails
  the step on every host with its message (prefer returning per-host results).
- Ctrl-C: ``ctx.run``/``fan_out`` raise ``errors.Interrupted`` (a ``KeyboardInterrupt``: do
  not catch it); what must be undone then is registered with ``ctx.on_interrupt(fn)``.
- The topology (``ctx.topology``: ``glm5cluster.topology.Topology`` or None) and the resolved
  nodes (``ctx.nodes``) are read-only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from glm5cluster.commands import CommandResult, Shell, Upload
from glm5cluster.connect.pool import ConnectionPool, HostResult, fan_out
from glm5cluster.engine.events import Event, EventKind, EventSink, Transfer
from glm5cluster.engine.report import StepResult
from glm5cluster.engine.runlog import RunLog
from glm5cluster.errors import Interrupted
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.nodes import Node
from glm5cluster.topology import Topology

T = TypeVar("T")


class Params(BaseModel):
    """Base of a procedure's parameter record (frozen, unknown keys refused)."""

    # defer_build: only the procedures a playbook uses pay for their validator (start-up cost).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


@runtime_checkable
class Procedure(Protocol):
    """Class attributes ``name`` and ``Params`` (a pydantic model, extra=forbid), and ``run``."""

    @property
    def name(self) -> str: ...

    @property
    def Params(self) -> type[BaseModel]: ...  # noqa: N802 - mirrors Task.Params

    def run(self, params: Any, ctx: ClusterContext) -> Mapping[str, StepResult]: ...


@dataclass
class ClusterContext:
    """What a procedure may use. Built by the engine for one step."""

    hosts: tuple[str, ...]
    nodes: Mapping[str, Node]
    inventory: Inventory
    topology: Topology | None
    check: bool
    deadline: float | None  # time.monotonic() value, or None for no limit
    step: str
    step_index: int
    forks: int
    _pool: ConnectionPool
    _events: EventSink
    _log: RunLog | None
    allow_reboot: bool = False  # --allow-reboot: procedures may reboot hosts that need it
    verify_weights: bool = False  # --verify-weights: re-hash every weight file, ignore stamps
    _cleanups: list[Callable[[], None]] | None = None  # the run's interrupt cleanups

    def on_interrupt(self, fn: Callable[[], None]) -> None:
        """Register ``fn`` to run if the run is interrupted (Ctrl-C) before this procedure
        returns: it runs after in-flight commands ended, on fresh connections (``run``/``put``/
        ``fan_out`` work again inside it; bound its waits). Undo what must not outlive the run:
        ephemeral keys, detached agents. Must be idempotent."""
        if self._cleanups is not None:
            self._cleanups.append(fn)

    def run(self, host: str, cmd: Shell) -> CommandResult:
        """Run on one host (raises ``TransportError`` when the host cannot be reached)."""
        result = self._pool.get(host).run(cmd)
        if self._log is not None:
            self._log.command(host, cmd, result)
        return result

    def reconnect(self, host: str) -> None:
        """Drop the pool's connection to ``host``; the next ``run``/``put`` opens a fresh one
        (after a reboot the old transport is dead)."""
        self._pool.drop(host)

    def put(self, host: str, upload: Upload) -> CommandResult:
        result = self._pool.get(host).put(upload)
        if self._log is not None:
            self._log.command(host, upload, result)
        return result

    def fan_out(self, fn: Callable[[str], T], hosts: Sequence[str] | None = None,
                timeout: float | None = None) -> Mapping[str, HostResult[T]]:
        if getattr(self._pool, "stopping", False):  # tests build contexts without a pool
            raise Interrupted()
        if timeout is None and self.deadline is not None:
            timeout = max(0.0, self.deadline - time.monotonic())
        return fan_out(list(hosts if hosts is not None else self.hosts), fn, self.forks, timeout)

    def progress(self, host: str, message: str, transfer: Transfer | None = None) -> None:
        """Live display + log; ``transfer`` (bytes done/total, rate, ETA) draws a progress bar."""
        self._events(Event(EventKind.HOST_PROGRESS, self.step_index, self.step, host, message,
                           transfer=transfer))
        if self._log is not None:
            self._log.write(host, f"[{self.step}] {message}")

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline
