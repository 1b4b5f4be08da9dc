"""The one seam every transport implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from glm5cluster.commands import CommandResult, Shell, Upload


@runtime_checkable
class Connection(Protocol):
    """A live connection to one host. ``run``/``put`` return results; transport faults raise
    ``glm5cluster.errors.TransportError`` (the host is then reported *unreachable*)."""

    host: str

    def run(self, cmd: Shell) -> CommandResult: ...

    def put(self, upload: Upload) -> CommandResult: ...

    def close(self) -> None: ...
