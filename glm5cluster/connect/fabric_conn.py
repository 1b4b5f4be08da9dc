"""A ``fabric.Connection`` for users' own site steps, connected the way the engine connects.

fabric's own ``Connection`` installs paramiko's ``AutoAddPolicy`` (it trusts any host key it has
never seen) and connects through its own code. Here:

- the ``AutoAddPolicy`` is replaced with ``RejectPolicy`` and the inventory's known_hosts files
  are loaded into the client before anything can connect;
- ``open()`` never calls ``SSHClient.connect``: the transport is the engine's own
  (``ssh.SshConnection``): host key checked against known_hosts right after the key exchange
  and before authenticating (unknown keys refused unless ``--accept-new-host-keys``), the
  inventory's jump hosts, identity files and connect timeout;
- ``sudo()`` is the engine's ``sudo -n -H sh -c`` for a non-root SSH user (plain ``run`` as
  root): never a password prompt;
- commands time out after the inventory's ``ssh.command_timeout``; output is hidden (it goes to
  the per-host run log through ``on_command``).

fabric is imported only here, and this module only when a playbook has a ``python:`` step.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from typing import Any

import fabric
import paramiko

from glm5cluster.commands import CommandResult
from glm5cluster.connect.pool import ConnectOptions, ssh_connection
from glm5cluster.connect.ssh import SshConnection
from glm5cluster.connect.sshconfig import resolve
from glm5cluster.errors import TransportError
from glm5cluster.model.nodes import Node

OnCommand = Callable[[CommandResult], None]


class EngineConnection(fabric.Connection):  # type: ignore[misc]
    """``fabric.Connection`` whose transport is the engine's (see the module doc)."""

    def __init__(self, engine: SshConnection, command_timeout: float | None,
                 on_command: OnCommand | None = None) -> None:
        ep = engine.endpoint
        config = fabric.Config(overrides={
            "load_ssh_configs": False,
            "run": {"hide": True, "in_stream": False},
            "timeouts": {"command": int(command_timeout) if command_timeout else None},
        })
        super().__init__(ep.host, user=ep.user, port=ep.port, config=config,
                         connect_timeout=int(engine.options.connect_timeout))
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        for path in engine.known_hosts.files:
            if os.path.exists(path):
                try:
                    self.client.load_host_keys(path)
                except (OSError, paramiko.SSHException):  # the engine's own check reports it
                    continue
        self.engine = engine
        self.on_command = on_command

    @property
    def policy(self) -> paramiko.MissingHostKeyPolicy:
        return self.client._policy  # noqa: SLF001 - what a test checks

    def open(self) -> None:
        if self.is_connected:
            return
        with self.engine._lock:  # noqa: SLF001 - same package: the engine's strict connect
            transport = self.engine._ensure()  # noqa: SLF001
        self.client._transport = transport  # noqa: SLF001 - SSHClient without its connect()
        self.transport = transport

    def run(self, command: str, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            result = super().run(command, **kwargs)
        except Exception as e:
            got = getattr(e, "result", None)
            if got is not None:
                self._record(command, got, start)
            raise
        self._record(command, result, start)
        return result

    def sudo(self, command: str, **kwargs: Any) -> Any:
        if not self.engine.needs_sudo:
            return self.run(command, **kwargs)
        return self.run(f"sudo -n -H sh -c {shlex.quote(command)}", **kwargs)

    def _record(self, command: str, result: Any, start: float) -> None:
        if self.on_command is not None:
            self.on_command(CommandResult(command, int(result.exited), str(result.stdout),
                                          str(result.stderr), time.monotonic() - start))

    def close(self) -> None:
        sftp = getattr(self, "_sftp", None)
        if sftp is not None:
            sftp.close()
            setattr(self, "_sftp", None)  # noqa: B010 - fabric's attribute, untyped
        self.transport = None  # type: ignore[assignment]
        self.client._transport = None  # type: ignore[assignment]  # noqa: SLF001
        self.engine.close()


def fabric_connection(node: Node, options: ConnectOptions,
                      on_command: OnCommand | None = None) -> EngineConnection:
    """A not yet connected ``EngineConnection`` to ``node`` (it connects on first use)."""
    if options.transport == "local":
        raise TransportError(f"{node.name}: python steps need SSH (a fabric Connection)",
                             hint="run without --transport local")
    endpoint = resolve(node.ssh, options.ssh_config)
    engine: SshConnection = ssh_connection(node, endpoint, options)
    return EngineConnection(engine, node.ssh.command_timeout, on_command)
