"""Gather several facts in one round trip: their commands as sections of one script.

For the engine: ``FactBatch(facts).command()`` is one ``Shell``; ``.parse(result)`` gives
``{key: parsed value}``, each fact parsing exactly the output its own command would have
produced alone (stdout, stderr and exit code of its section).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.sections import section_script, split_sections


def _section_name(prefix: str, i: int, key: str) -> str:
    tame = re.sub(r"[^a-z0-9_.-]+", "-", key.lower()).strip("-")[:40] or "fact"
    return f"{prefix}{i}-{tame}"


class FactBatch(Fact[dict[str, Any]]):
    """Many facts as one fact. ``facts`` maps a caller's key to a fact instance. A batch nested
    in another (the host-facts bundle inside the engine's batch) takes another ``prefix`` so
    its section names cannot match the outer ones."""

    name = "batch"

    def __init__(self, facts: Mapping[str, Fact[Any]], prefix: str = "f") -> None:
        if not facts:
            raise ValueError("FactBatch needs at least one fact")
        self.facts = dict(facts)
        self._names = {key: _section_name(prefix, i, key) for i, key in enumerate(self.facts)}
        for key, fact in self.facts.items():
            cmd = fact.command()
            if cmd.env or cmd.stdin is not None:
                raise ValueError(f"fact {key} needs env or stdin; gather it on its own")

    def command(self) -> Shell:
        commands = {key: fact.command() for key, fact in self.facts.items()}
        parts = [(self._names[key], cmd.command_line()) for key, cmd in commands.items()]
        timeouts = [c.timeout for c in commands.values() if c.timeout is not None]
        return Shell.sh(
            section_script(parts),
            sudo=any(c.sudo for c in commands.values()),
            timeout=sum(timeouts) if timeouts else None,
            description="gather facts: " + ", ".join(self.facts),
        )

    def parse(self, result: CommandResult) -> dict[str, Any]:
        parts = split_sections(result, list(self._names.values()))
        return {key: fact.parse(parts[self._names[key]]) for key, fact in self.facts.items()}
