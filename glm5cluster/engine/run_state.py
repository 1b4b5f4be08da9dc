"""What one run of a playbook carries from step to step (``engine/runner.py`` drives it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.events import EventSink
from glm5cluster.engine.playbook import Playbook
from glm5cluster.engine.runlog import RunLog
from glm5cluster.model.nodes import Node
from glm5cluster.tasks.base import HostContext

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
class Run:
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
