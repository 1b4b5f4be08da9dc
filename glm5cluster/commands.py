"""The command vocabulary shared by tasks, facts, procedures and transports.

Tasks and facts only *describe* commands; transports (``connect/``) run them.
Secrets never travel in argv: a ``Shell`` passes them on standard input, and every
display of a command masks them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Secret:
    """A secret value, shown as ``***`` everywhere it is displayed."""

    name: str
    value: str = field(repr=False)

    def __str__(self) -> str:
        return f"<secret {self.name}>"

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, '***')"


DEFAULT_TIMEOUT = 300.0  # seconds: a command with no size of its own (config, systemctl, probes)


@dataclass(frozen=True)
class Shell:
    """A command to run on a host.

    ``argv`` is run as is (quoted with ``shlex.join``); ``script`` is a POSIX sh script the
    caller has already quoted (every interpolated value through ``shlex.quote``). Exactly one of
    the two is set. ``stdin`` feeds standard input: the only way a ``Secret`` reaches a host.

    Every command has a ``timeout`` (seconds): ``DEFAULT_TIMEOUT`` unless the command's work has
    a size of its own (package installs, image pulls, hashing weights pass theirs); ``None``
    means the default, never "no limit". A host that stops answering thus costs at most that.
    """

    argv: tuple[str, ...] = ()
    script: str | None = None
    sudo: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: str | Secret | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    description: str = ""

    def __post_init__(self) -> None:
        if bool(self.argv) == (self.script is not None):
            raise ValueError("Shell needs exactly one of argv or script")
        if self.timeout is None:
            object.__setattr__(self, "timeout", DEFAULT_TIMEOUT)
        elif self.timeout <= 0:
            raise ValueError(f"Shell timeout must be positive, not {self.timeout}")

    @property
    def limit(self) -> float:
        """The command's timeout in seconds (always set)."""
        return float(self.timeout or DEFAULT_TIMEOUT)

    def effective_timeout(self, host_default: float | None) -> float:
        """The inventory's ``ssh.command_timeout`` replaces the default, never a sized limit."""
        if host_default and self.timeout == DEFAULT_TIMEOUT:
            return float(host_default)
        return self.limit

    @classmethod
    def sh(cls, script: str, **kw: object) -> Shell:
        return cls(script=script, **kw)  # type: ignore[arg-type]

    @classmethod
    def cmd(cls, *argv: str, **kw: object) -> Shell:
        return cls(argv=tuple(argv), **kw)  # type: ignore[arg-type]

    def command_line(self) -> str:
        """The shell text sent to the host (without sudo and env wrapping)."""
        if self.script is not None:
            return self.script
        return shlex.join(self.argv)

    def full_command_line(self, use_sudo: bool = False) -> str:
        """What the transport executes: env assignments, optional sudo, then ``sh -c``."""
        body = self.command_line()
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        inner = f"env {env} sh -c {shlex.quote(body)}" if env else f"sh -c {shlex.quote(body)}"
        if use_sudo and self.sudo:
            return f"sudo -n -H {inner}"
        return inner

    def stdin_bytes(self) -> bytes | None:
        if self.stdin is None:
            return None
        value = self.stdin.value if isinstance(self.stdin, Secret) else self.stdin
        return value.encode()

    def display(self) -> str:
        text = self.description or self.command_line()
        return text if len(text) < 300 else text[:297] + "..."


@dataclass(frozen=True)
class Upload:
    """Write ``content`` to ``dest`` on a host with the given mode and owner (atomically)."""

    dest: str
    content: bytes
    mode: int = 0o644
    owner: str | None = None
    group: str | None = None
    sudo: bool = False
    description: str = ""

    def display(self) -> str:
        return self.description or f"write {self.dest} ({len(self.content)} bytes, mode {self.mode:04o})"


Command = Shell | Upload


@dataclass(frozen=True)
class CommandResult:
    """What running a command gave. A failure is a value; raising is the caller's choice."""

    command: str
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, n: int = 10) -> str:
        text = (self.stdout.rstrip() + "\n" + self.stderr.rstrip()).strip()
        lines = text.splitlines()
        return "\n".join(lines[-n:])
