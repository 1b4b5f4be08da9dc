"""What a fact is: a command to run on a host and a pure parser of its result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from glm5cluster.commands import CommandResult, Shell

T = TypeVar("T")


class Fact(Generic[T]):
    """Subclasses set ``name`` and implement ``command`` and ``parse``.

    ``parse`` must be pure (no I/O) and is tested on real captured outputs in ``tests/facts/``.
    A fact whose command fails is not an error by itself: ``parse`` decides what a non-zero exit
    means (e.g. "no driver installed").
    """

    name: str = ""

    def command(self) -> Shell:
        raise NotImplementedError

    def parse(self, result: CommandResult) -> T:
        raise NotImplementedError

    def key(self) -> str:
        """Identity of this fact instance (name plus parameters), for caching within a run."""
        return f"{self.name}:{self.command().command_line()}"


@dataclass(frozen=True)
class FactError(Exception):
    fact: str
    message: str

    def __str__(self) -> str:
        return f"fact {self.fact}: {self.message}"
