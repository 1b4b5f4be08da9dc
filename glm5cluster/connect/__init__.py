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
