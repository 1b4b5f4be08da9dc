"""Per-host log files of one run: ``~/.glm5cluster/runs/<timestamp>-<playbook>/<host>.log``.

The run directory is 0700 and each log 0600. Every secret value the run handles (``Secret``
stdin of a command, or registered explicitly) is replaced by ``***`` before anything is written.
``GLM5CLUSTER_HOME`` moves the base directory (default ``~/.glm5cluster``).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable

from glm5cluster.commands import CommandResult, Secret, Shell, Upload
from glm5cluster.redact import mask

MAX_STREAM = 64 * 1024  # bytes of stdout/stderr kept per command in the log


def runs_base() -> str:
    home = os.environ.get("GLM5CLUSTER_HOME") or os.path.expanduser("~/.glm5cluster")
    return os.path.join(home, "runs")


class RunLog:
    def __init__(self, playbook: str, base: str | None = None, secrets: Iterable[str] = ()) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        tame = re.sub(r"[^A-Za-z0-9_.-]+", "-", playbook).strip("-") or "run"
        base = base or runs_base()
        os.makedirs(base, mode=0o700, exist_ok=True)
        path = os.path.join(base, f"{stamp}-{tame}")
        n = 1
        while True:
            try:
                os.mkdir(path, 0o700)
                break
            except FileExistsError:
                n += 1
                path = os.path.join(base, f"{stamp}-{tame}-{n}")
        os.chmod(path, 0o700)
        self.dir = path
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._files: dict[str, int] = {}
        for s in secrets:
            self.add_secret(s)

    def add_secret(self, value: str) -> None:
        """Mask ``value`` from now on. Blank values are never masked (an unset token would turn
        every newline into ``***``); a multi-line value (a token, then a request on stdin) is
        masked line by line, so the token alone is hidden wherever it shows up."""
        parts = {value.strip()} | {ln.strip() for ln in value.splitlines()}
        parts = {p for p in parts if p}
        if parts:
            with self._lock:
                self._secrets |= parts

    def mask(self, text: str) -> str:
        return mask(text, self._secrets)

    def path_of(self, host: str) -> str:
        return os.path.join(self.dir, f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', host)}.log")

    def write(self, host: str, text: str) -> None:
        data = self.mask(text if text.endswith("\n") else text + "\n").encode()
        with self._lock:
            fd = self._files.get(host)
            if fd is None:
                fd = os.open(self.path_of(host), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                self._files[host] = fd
            os.write(fd, data)

    def command(self, host: str, cmd: Shell | Upload, result: CommandResult) -> None:
        if isinstance(cmd, Shell) and isinstance(cmd.stdin, Secret):
            self.add_secret(cmd.stdin.value)
        what = cmd.display()
        lines = [f"$ {what}" + (" (sudo)" if cmd.sudo else ""),
                 f"  exit {result.exit_code} in {result.duration:.2f}s"]
        for label, stream in (("stdout", result.stdout), ("stderr", result.stderr)):
            if stream.strip():
                body = stream[-MAX_STREAM:]
                lines.append(f"  --- {label}\n" + "\n".join("  " + ln for ln in body.splitlines()))
        self.write(host, "\n".join(lines))

    def close(self) -> None:
        with self._lock:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()
