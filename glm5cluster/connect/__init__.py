"""Transports: the only code that talks to hosts (SSH via paramiko, OpenSSH, local, fake).

Public API:

- ``base.Connection``: the protocol (``run(Shell)``, ``put(Upload)``, ``close()``; transport
  faults raise ``TransportError`` -> the host is *unreachable*; refused host keys ``HostKeyError``).
- ``pool.ConnectionPool(nodes, ConnectOptions(...), factory=None)``: one lazily opened connection
  per host per run, ``get(host)``, ``drop(host)``, ``close_all()`` (a context manager).
- ``pool.fan_out(hosts, fn, max_workers, timeout=None) -> {host: HostResult}``: a value *or* an
  error for every host, joined with a deadline.
- ``ssh.SshConnection``: paramiko ``Transport`` (no fabric layers), strict host keys
  (``hostkeys.KnownHosts``: inventory known_hosts, then ~/.ssh/known_hosts; unknown -> refused with
  fingerprint and the command to trust it; ``--accept-new-host-keys`` records; changed -> always
  refused), jump hosts over ``direct-tcpip`` (each hop's key verified), ``~/.ssh/config``
  (``sshconfig.resolve``), connect/command timeouts, retries for transport errors only,
  ``sudo -n`` for non-root users, uploads by SFTP to a temp file then chmod/chown/mv.
- ``openssh.OpenSshConnection``: the system ``ssh`` with a ControlMaster per host (still strict).
- ``local.LocalConnection`` (this machine) and ``fake.FakeConnection`` (scripted test double).

Which SSH transport is the default was decided by measurement (benchmarks/bench_converge.py,
2-core machine, lab hosts): paramiko is the default. Per run it pays one handshake per host in
process (no ``ssh`` process per command); the OpenSSH transport pays a process per command and
was slower at both 4 and 16 hosts. ``--transport openssh`` (or ``GLM5CLUSTER_TRANSPORT``) stays
available for sites whose ssh setup paramiko cannot follow (GSSAPI, certificates, exotic
ProxyCommand).
"""

import importlib
import importlib.util
import sys
import types


class _Deferred(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until an attribute of it is used; then imports
    the real module (which replaces it in ``sys.modules``) and answers from it."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def _defer_invoke() -> None:
    """paramiko.config imports ``invoke`` (~50 ms of start-up) only to run the ``Match exec``
    lines of an ssh config. A stand-in imports it on first use, so behaviour is the same and
    every other run skips the import. Not installed: nothing is done (paramiko's own fallback)."""
    if "invoke" in sys.modules:
        return
    spec = importlib.util.find_spec("invoke")
    if spec is None:
        return
    stand_in = _Deferred("invoke")
    stand_in.__spec__ = spec
    sys.modules["invoke"] = stand_in


_defer_invoke()
