"""SSH hardening: a silent host fails fast and is named; the jump hop is as strict as the
target; sudo uploads are private from the first byte; host-key algorithms follow known_hosts;
@revoked / @cert-authority lines; accepted keys stored hashed and 0600."""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

import pytest

from glm5cluster.commands import Shell
from glm5cluster.connect import ssh as sshmod
from glm5cluster.connect.ssh import SshConnection, SshOptions
from glm5cluster.connect.sshconfig import resolve
from glm5cluster.errors import TransportError
from glm5cluster.model.nodes import SshTarget


def silent(calls: list[float], error: OSError) -> Any:
    def create_connection(*a: Any, **kw: Any) -> socket.socket:
        calls.append(time.monotonic())
        raise error
    return create_connection


@pytest.mark.parametrize("error", [TimeoutError("timed out"), OSError(errno.EHOSTUNREACH, "No route to host")])
def test_a_host_that_does_not_answer_is_named_after_one_connect_timeout(
        monkeypatch: pytest.MonkeyPatch, error: OSError) -> None:
    calls: list[float] = []
    monkeypatch.setattr(sshmod.socket, "create_connection", silent(calls, error))
    t = SshTarget(address="10.0.0.9", connect_timeout=5)
    c = SshConnection("node-3", resolve(t), None, SshOptions(user_known_hosts=None, connect_attempts=3, retry_delay=1))
    with pytest.raises(TransportError, match=r"node-3: cannot connect to root@10.0.0.9:22: (timed out|no route to host)"):
        c.run(Shell.cmd("true"))
    assert len(calls) == 1  # no retry: three attempts would triple the wait


def test_a_refused_connection_is_still_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(sshmod.socket, "create_connection", silent(calls, ConnectionRefusedError(errno.ECONNREFUSED, "refused")))
    t = SshTarget(address="10.0.0.9", connect_timeout=5)
    c = SshConnection("node-3", resolve(t), None, SshOptions(user_known_hosts=None, connect_attempts=3, retry_delay=0))
    with pytest.raises(TransportError, match="connection refused"):
        c.run(Shell.cmd("true"))
    assert len(calls) == 3  # sshd restarting (after a reboot) comes back
