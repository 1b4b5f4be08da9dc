"""``LocalConnection``: runs commands on this machine (tests, benchmarks, a one-box lab)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

from glm5cluster.commands import CommandResult, Shell, Upload


class LocalConnection:
    """The ``Connection`` protocol over ``subprocess``; sudo is used only when not root."""

    def __init__(self, host: str = "localhost", command_timeout: float | None = None) -> None:
        self.host = host
        self.command_timeout = command_timeout
        self.needs_sudo = os.geteuid() != 0

    def run(self, cmd: Shell) -> CommandResult:
        line = cmd.full_command_line(use_sudo=self.needs_sudo)
        timeout = cmd.effective_timeout(self.command_timeout)
        start = time.monotonic()
        try:
            proc = subprocess.run(  # noqa: S603 - argv; the line inside is built with shlex quoting
                ["/bin/sh", "-c", line], input=cmd.stdin_bytes() or b"", capture_output=True,
                timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace")
            err = (e.stderr or b"").decode(errors="replace") + f"\ntimed out after {timeout}s"
            return CommandResult(cmd.display(), 124, out, err, time.monotonic() - start)
        return CommandResult(cmd.display(), proc.returncode, proc.stdout.decode(errors="replace"),
                             proc.stderr.decode(errors="replace"), time.monotonic() - start)

    def stream(self, cmd: Shell, on_line: Callable[[str], None], stop: threading.Event) -> int | None:
        """As ``SshConnection.stream``: lines as they come until exit or ``stop`` (stdin closed)."""
        proc = subprocess.Popen(  # noqa: S603 - argv; the line inside is built with shlex quoting
            ["/bin/sh", "-c", cmd.full_command_line(use_sudo=self.needs_sudo)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdin is not None and proc.stdout is not None
        data = cmd.stdin_bytes()
        if data:
            proc.stdin.write(data)
            proc.stdin.flush()

        def watch() -> None:
            while proc.poll() is None:
                if stop.wait(0.1):
                    proc.stdin.close()  # type: ignore[union-attr]
                    if proc.poll() is None:
                        time.sleep(0.5)
                        proc.terminate()
                    return

        threading.Thread(target=watch, daemon=True, name=f"stream-{self.host}").start()
        for raw in proc.stdout:
            on_line(raw.decode(errors="replace").rstrip("\n"))
        proc.wait()
        return None if stop.is_set() else proc.returncode

    def put(self, upload: Upload) -> CommandResult:
        start = time.monotonic()
        if self.needs_sudo and upload.sudo:  # pragma: no cover - tests run as root
            raise NotImplementedError("LocalConnection writes as the current user only")
        directory = os.path.dirname(upload.dest) or "."
        try:
            fd, tmp = tempfile.mkstemp(prefix=".glm5cluster-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(upload.content)
                os.chmod(tmp, upload.mode)
                if upload.owner or upload.group:
                    import shutil

                    shutil.chown(tmp, upload.owner or -1, upload.group or -1)  # type: ignore[arg-type]
                os.replace(tmp, upload.dest)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except (OSError, LookupError) as e:
            return CommandResult(upload.display(), 1, "", str(e), time.monotonic() - start)
        return CommandResult(upload.display(), 0, "", "", time.monotonic() - start)

    def close(self) -> None:
        return None
