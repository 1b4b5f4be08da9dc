"""What a task is: pure; no connection, no sleep, no print.

A task declares the facts it needs for its parameters and host context; the engine gathers
them (re-read right before the step), calls ``plan`` and applies the returned commands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from glm5cluster.commands import Command
from glm5cluster.errors import GlmError
from glm5cluster.facts.base import Fact
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.nodes import Node


class Params(BaseModel):
    """Base of every task's parameter record: frozen, unknown keys refused."""

    # defer_build: only the tasks a playbook uses pay for their validator (start-up cost).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Change:
    """Commands that bring the host to the wanted state, a one-line summary and an optional diff."""

    commands: Sequence[Command]
    summary: str
    diff: str | None = None


@dataclass(frozen=True)
class NoOp:
    """Nothing to do, and why (shown in the recap)."""

    reason: str


@dataclass(frozen=True)
class Skip:
    """The step does not apply to this host, and why."""

    reason: str


@dataclass(frozen=True)
class Fail:
    """The task found the host in a state it must not touch; message and hint for the user."""

    message: str
    hint: str | None = None


Outcome = Change | NoOp | Skip | Fail


@dataclass(frozen=True)
class HostContext:
    """Everything a task may read about the host it plans for. Built by the engine.

    ``inventory`` is None for a playbook run without one (engine tests, ``run`` with plain tasks).
    """

    node: Node
    inventory: Inventory | None = None
    check: bool = False

    @property
    def inv(self) -> Inventory:
        """The inventory, for tasks that cannot plan without one."""
        if self.inventory is None:
            raise GlmError("this task needs an inventory", hint="run it through `glm5cluster up`/`run INV`")
        return self.inventory


class Task(Generic[P]):
    """Subclass with ``name``, ``Params`` and the two methods. Register in ``tasks/registry.py``."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    privileged: ClassVar[bool] = True  # commands need root (sudo for non-root users)

    def facts(self, params: P, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        return {}

    def plan(self, params: P, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        raise NotImplementedError
