"""The exception hierarchy. Every error carries a message for people and a hint (the next step).

Exit codes (architecture doc, rule 10): 0 success, 1 some hosts failed, 2 bad input.
"""

from __future__ import annotations


class GlmError(Exception):
    """Base of every error glm5cluster raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class InputError(GlmError):
    """Bad input from the user: an inventory, a playbook, a flag. Exit code 2."""

    exit_code = 2


class Problem:
    """One problem found in an input file: where it is, what is wrong, what to do."""

    __slots__ = ("file", "line", "path", "message", "hint")

    def __init__(self, file: str, line: int | None, path: str, message: str, hint: str | None = None):
        self.file = file
        self.line = line
        self.path = path
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        tail = f" ({self.hint})" if self.hint else ""
        return f"{where}:{field} {self.message}{tail}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"


class InputProblems(InputError):
    """Several problems in one input file, all reported at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PlanError(InputError):
    """The inventory is well-formed but describes a cluster that cannot be built.

    ``path`` is the inventory field path the problem is about (``hosts[2].cluster_address``,
    ``model.repo``) so the loader can point at the file and line; ``warning`` marks problems
    that are reported but do not stop the run (e.g. hosts left over).
    """

    def __init__(self, message: str, hint: str | None = None, path: str = "", warning: bool = False) -> None:
        super().__init__(message, hint)
        self.path = path
        self.warning = warning


class TransportError(GlmError):
    """A host could not be reached or the connection broke (retryable)."""


class HostKeyError(GlmError):
    """A host key is unknown or changed: never accepted silently."""

    exit_code = 2


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C): raised by connections of an interrupted pool so that no
    new remote command starts. A ``KeyboardInterrupt``, so ``except Exception`` never swallows it."""

    def __init__(self, message: str = "interrupted (Ctrl-C)") -> None:
        super().__init__(message)
        self.message = message
        self.hint: str | None = None
