"""``FakeConnection``: a scripted test double for the engine (ships in the package, as fabric's
``MockRemote`` does). Responses are matched by substring of the command line, first match wins;
every command and upload is recorded.

    conn = FakeConnection("node-1", responses=[("stat /etc/x", CommandResult("", 1))])
    conn.fail_with(TransportError("node-1 down"))   # every later call raises
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from glm5cluster.commands import CommandResult, Shell, Upload

Responder = Callable[[Shell], CommandResult | None]


@dataclass
class FakeConnection:
    host: str
    responses: Sequence[tuple[str, CommandResult]] = ()
    responder: Responder | None = None
    default: CommandResult = field(default_factory=lambda: CommandResult("", 0))
    ran: list[Shell] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    closed: bool = False
    error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_with(self, error: BaseException | None) -> None:
        self.error = error

    def run(self, cmd: Shell) -> CommandResult:
        with self._lock:
            self.ran.append(cmd)
        if self.error is not None:
            raise self.error
        if self.responder is not None:
            got = self.responder(cmd)
            if got is not None:
                return got
        line = cmd.command_line()
        for needle, result in self.responses:
            if needle in line:
                return CommandResult(cmd.display(), result.exit_code, result.stdout,
                                     result.stderr, result.duration)
        return CommandResult(cmd.display(), self.default.exit_code, self.default.stdout,
                             self.default.stderr)

    def stream(self, cmd: Shell, on_line: Callable[[str], None], stop: threading.Event) -> int | None:
        """Answers like ``run``, then feeds the answer's stdout line by line."""
        result = self.run(cmd)
        for line in result.stdout.splitlines():
            if stop.is_set():
                return None
            on_line(line)
        return result.exit_code

    def put(self, upload: Upload) -> CommandResult:
        with self._lock:
            self.uploads.append(upload)
        if self.error is not None:
            raise self.error
        return CommandResult(upload.display(), 0)

    def close(self) -> None:
        self.closed = True

    def command_lines(self) -> list[str]:
        return [c.command_line() for c in self.ran]
