"""Run a (read-only) shell script as a fact: the result itself is the value."""

from __future__ import annotations

import shlex

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact


class CommandFact(Fact[CommandResult]):
    """``script`` is POSIX sh written (and quoted) by its author, e.g. a playbook's probe.
    The exit code is part of the value, never an error."""

    name = "command"

    def __init__(self, script: str, timeout: float | None = None) -> None:
        self.script = script
        self.timeout = timeout

    def command(self) -> Shell:
        if self.timeout is None:
            return Shell.sh(self.script)
        # killed on its own after ``timeout`` s (exit 124), also when batched with other facts
        secs = max(1, int(self.timeout))
        return Shell.sh(f"timeout -k 5 {secs} sh -c {shlex.quote(self.script)}", timeout=secs + 10)

    def parse(self, result: CommandResult) -> CommandResult:
        return result
