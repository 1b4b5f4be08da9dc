"""The SSH transport: one paramiko ``Transport`` per host, opened lazily and reused.

fabric's ``Connection`` is not used: it installs ``AutoAddPolicy`` and its layers cost CPU per
command. Here the host key is checked against known_hosts (``hostkeys.KnownHosts``) right after
the key exchange and before authenticating; nothing is sent to an unverified host.
Retries happen only for transport errors (refused, reset, timeout, EOF during the handshake);
a command that ran and failed is a result, never retried.
"""

from __future__ import annotations

import errno
import os
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from glm5cluster.commands import CommandResult, Shell, Upload
from glm5cluster.connect.hostkeys import KnownHosts
from glm5cluster.connect.sshconfig import DEFAULT_IDENTITIES, Endpoint
from glm5cluster.errors import GlmError, HostKeyError, TransportError

_TRANSIENT = (OSError, EOFError, socket.timeout, paramiko.SSHException)
_KEX = ("curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "diffie-hellman-group16-sha512",
        "diffie-hellman-group14-sha256")
_CIPHERS = ("aes128-ctr", "aes256-ctr", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
_MACS = ("hmac-sha2-256", "hmac-sha2-512", "hmac-sha2-256-etm@openssh.com")


@dataclass(frozen=True)
class SshOptions:
    accept_new_host_keys: bool = False
    user_known_hosts: str | None = "~/.ssh/known_hosts"
    connect_timeout: float = 10.0
    command_timeout: float | None = None
    connect_attempts: int = 3
    retry_delay: float = 1.0


def _load_key(path: str) -> paramiko.PKey | None:
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        return None
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.SSHException, OSError, ValueError) as e:
        raise TransportError(f"cannot load identity file {path}: {e}",
                             hint="use an unencrypted key or load it into ssh-agent") from e


class SshConnection:
    """``Connection`` over SSH. Thread-safe for one caller at a time per host (the pool's use)."""

    def __init__(self, host: str, endpoint: Endpoint, known_hosts_file: str | None,
                 options: SshOptions, needs_sudo: bool = False) -> None:
        self.host = host
        self.endpoint = endpoint
        self.options = options
        self.needs_sudo = needs_sudo
        files = [f for f in (known_hosts_file, *endpoint.known_hosts, options.user_known_hosts) if f]
        self.known_hosts = KnownHosts(
            files=tuple(os.path.expanduser(f) for f in files),
            record_file=os.path.expanduser(files[0] if files else "~/.ssh/known_hosts"),
            accept_new=options.accept_new_host_keys,
        )
        self._transports: list[paramiko.Transport] = []
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    # -- connecting ------------------------------------------------------------------------
    def _handshake(self, ep: Endpoint, sock: socket.socket | paramiko.Channel) -> paramiko.Transport:
        t = paramiko.Transport(sock)
        t.banner_timeout = self.options.connect_timeout
        t.handshake_timeout = self.options.connect_timeout
        t.auth_timeout = self.options.connect_timeout
        sec = t.get_security_options()
        sec.kex = [k for k in _KEX if k in sec.kex]
        sec.ciphers = [c for c in _CIPHERS if c in sec.ciphers]
        sec.digests = [m for m in _MACS if m in sec.digests]
        sec.key_types = self.known_hosts.preferred_key_types(ep.host, ep.port, sec.key_types)
        t.set_keepalive(30)
        t.start_client(timeout=self.options.connect_timeout)
        self.known_hosts.verify(ep.host, ep.port, t.get_remote_server_key(),
                                label=f"{ep.label} ({ep.host}:{ep.port})")
        self._authenticate(t, ep)
        return t

    def _authenticate(self, t: paramiko.Transport, ep: Endpoint) -> None:
        tried: list[str] = []
        paths = ep.identity_files or DEFAULT_IDENTITIES
        for path in paths:
            key = _load_key(path)
            if key is None:
                continue
            tried.append(path)
            try:
                t.auth_publickey(ep.user, key)
                return
            except paramiko.AuthenticationException:
                continue
        try:
            agent_keys = paramiko.Agent().get_keys()
        except paramiko.SSHException:  # pragma: no cover - broken agent socket
            agent_keys = ()
        for akey in agent_keys:
            tried.append(f"agent:{akey.get_name()}")
            try:
                t.auth_publickey(ep.user, akey)
                return
            except paramiko.AuthenticationException:
                continue
        t.close()
        raise TransportError(
            f"{self.host}: authentication as {ep.user}@{ep.host}:{ep.port} failed "
            f"(tried {', '.join(tried) or 'no keys'})",
            hint="set ssh.identity_file in the inventory or load the key into ssh-agent",
        )

    def _open_socket(self, ep: Endpoint, via: paramiko.Transport | None) -> socket.socket | paramiko.Channel:
        if via is None:
            sock = socket.create_connection((ep.host, ep.port), timeout=self.options.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        return via.open_channel("direct-tcpip", (ep.host, ep.port), ("127.0.0.1", 0),
                                timeout=self.options.connect_timeout)

    def _connect_once(self) -> None:
        chain = [*self.endpoint.jumps, self.endpoint]
        transports: list[paramiko.Transport] = []
        try:
            via = None
            for ep in chain:
                via = self._handshake(ep, self._open_socket(ep, via))
                transports.append(via)
        except BaseException:
            for t in reversed(transports):
                t.close()
            raise
        self._transports = transports

    def _ensure(self) -> paramiko.Transport:
        if self._transports and self._transports[-1].is_active():
            return self._transports[-1]
        self._drop()
        last: BaseException | None = None
        for attempt in range(max(1, self.options.connect_attempts)):
            try:
                self._connect_once()
                return self._transports[-1]
            except (HostKeyError, TransportError):
                raise
            except GlmError:
                raise
            except _TRANSIENT as e:
                last = e
                if _host_down(e):  # it already cost the connect timeout: name the host now
                    break
                if attempt + 1 < self.options.connect_attempts:
                    time.sleep(self.options.retry_delay * (attempt + 1))
        ep = self.endpoint
        raise TransportError(
            f"{self.host}: cannot connect to {ep.user}@{ep.host}:{ep.port}: {_describe(last)}",
            hint="check that the host is up and sshd listens there (ssh.port, ssh.jump_host)",
        )

    def _drop(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead channel
                pass
            self._sftp = None
        for t in reversed(self._transports):
            t.close()
        self._transports = []

    # -- running ---------------------------------------------------------------------------
    def _session(self) -> paramiko.Channel:
        """A new channel; reconnects once if the cached transport died (nothing ran yet)."""
        for attempt in (0, 1):
            t = self._ensure()
            try:
                return t.open_session(timeout=self.options.connect_timeout)
            except _TRANSIENT as e:
                self._drop()
                if attempt:
                    raise TransportError(f"{self.host}: cannot open a session: {_describe(e)}") from e
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, cmd: Shell) -> CommandResult:
        line = cmd.full_command_line(use_sudo=self.needs_sudo)
        timeout = cmd.effective_timeout(self.options.command_timeout)
        with self._lock:
            chan = self._session()
        start = time.monotonic()
        try:
            chan.exec_command(line)
            data = cmd.stdin_bytes()
            if data:
                chan.sendall(data)
            chan.shutdown_write()
            out, err, code = _collect(chan, timeout, start)
        except _TRANSIENT as e:
            raise TransportError(f"{self.host}: connection lost while running "
                                 f"{cmd.display()!r}: {_describe(e)}") from e
        finally:
            chan.close()
        if code is None:
            return CommandResult(cmd.display(), 124, out, err + f"\ntimed out after {timeout}s",
                                 time.monotonic() - start)
        return CommandResult(cmd.display(), code, out, err, time.monotonic() - start)

    def stream(self, cmd: Shell, on_line: Callable[[str], None], stop: threading.Event) -> int | None:
        """Run ``cmd``, calling ``on_line`` with each line of its output (stdout and stderr merged)
        as it arrives, until it exits (its exit code is returned) or ``stop`` is set: then the
        channel is closed, so the remote command's standard input reaches EOF, and None is
        returned. Standard input stays open while streaming (``cmd.stdin`` is sent first)."""
        with self._lock:
            chan = self._session()
        buf = b""
        code: int | None = None
        try:
            chan.set_combine_stderr(True)
            chan.exec_command(cmd.full_command_line(use_sudo=self.needs_sudo))
            data = cmd.stdin_bytes()
            if data:
                chan.sendall(data)
            while not stop.is_set():
                if chan.recv_ready():
                    chunk = chan.recv(65536)
                    if not chunk:
                        break
                    *lines, buf = (buf + chunk).split(b"\n")
                    for raw in lines:
                        on_line(raw.decode(errors="replace").rstrip("\r"))
                elif chan.exit_status_ready() or chan.closed:
                    break
                elif not chan.get_transport().is_active():  # type: ignore[union-attr]
                    raise EOFError("connection lost while streaming")
                else:
                    stop.wait(0.05)
            if buf:
                on_line(buf.decode(errors="replace"))
            if not stop.is_set() and chan.exit_status_ready():
                code = chan.recv_exit_status()
        except _TRANSIENT as e:
            raise TransportError(f"{self.host}: connection lost while streaming {cmd.display()!r}: "
                                 f"{_describe(e)}") from e
        finally:
            chan.close()
        return code

    def put(self, upload: Upload) -> CommandResult:
        """SFTP to a temp file, then chmod/chown and ``mv`` into place (through sudo if needed).

        Through sudo the bytes first land in a private directory (0700, made by this upload) as
        a 0600 file, never readable by others; the temp file and directory are removed on every
        path, also when sudo refuses and the root side never runs."""
        start = time.monotonic()
        sudo = self.needs_sudo and upload.sudo
        private = f"/tmp/.glm5cluster-{uuid.uuid4().hex}" if sudo else None  # noqa: S108
        tmp_dir = private or os.path.dirname(upload.dest) or "/"
        tmp = f"{tmp_dir}/.glm5cluster-{uuid.uuid4().hex}"
        sftp: paramiko.SFTPClient | None = None
        placed = False
        try:
            try:
                with self._lock:
                    if self._sftp is None:
                        self._sftp = self._ensure().open_sftp_client()
                    sftp = self._sftp
                assert sftp is not None
                if private:
                    sftp.mkdir(private, 0o700)  # fails if it exists: never someone else's
                    sftp.chmod(private, 0o700)  # whatever the umask
                with sftp.open(tmp, "wb") as f:
                    f.chmod(0o600)  # before the first byte
                    f.write(upload.content)
            except (OSError, EOFError, paramiko.SSHException) as e:
                alive = bool(self._transports) and self._transports[-1].is_active()
                if alive and isinstance(e, OSError):  # e.g. permission denied: a result, not a fault
                    return CommandResult(upload.display(), 1, "", f"sftp write {tmp}: {e}",
                                         time.monotonic() - start)
                self._drop()
                raise TransportError(f"{self.host}: upload of {upload.dest} failed: {_describe(e)}") from e
            res = self._place(upload, tmp, sudo, start)
            placed = res.ok
            return res
        finally:
            if sftp is not None and (private or not placed):
                _remove_quietly(sftp, None if placed else tmp, private)

    def _place(self, upload: Upload, tmp: str, sudo: bool, start: float) -> CommandResult:
        owner = upload.owner or ("root" if sudo else "")
        chown = f"{owner}:{upload.group}" if upload.group else owner
        # never leave the content behind: the traps remove the temp files on any failure
        script = f"set -e; s={shlex.quote(tmp)}; trap 'rm -f \"$s\"' EXIT; "
        if sudo:
            script += f"t=$(mktemp {shlex.quote(os.path.dirname(upload.dest) + '/.glm5cluster.XXXXXX')}); "
            script += "trap 'rm -f \"$t\" \"$s\"' EXIT; cat \"$s\" > \"$t\"; rm -f \"$s\"; "
        else:
            script += "t=$s; "
        script += f"chmod {upload.mode:o} \"$t\"; "
        if chown:
            script += f"chown {shlex.quote(chown)} \"$t\"; "
        script += f"mv -f \"$t\" {shlex.quote(upload.dest)}"
        res = self.run(Shell.sh(script, sudo=sudo, description=upload.display()))
        return CommandResult(upload.display(), res.exit_code, res.stdout, res.stderr,
                             time.monotonic() - start)

    def close(self) -> None:
        with self._lock:
            self._drop()


def _collect(chan: paramiko.Channel, timeout: float | None, start: float) -> tuple[str, str, int | None]:
    out: list[bytes] = []
    err: list[bytes] = []

    def drain() -> None:
        while chan.recv_ready():
            out.append(chan.recv(65536))
        while chan.recv_stderr_ready():
            err.append(chan.recv_stderr(65536))

    code: int | None = None
    while True:
        if chan.status_event.wait(0.05):
            code = chan.recv_exit_status()
            transport = chan.get_transport()
            if code == -1 and (transport is None or not transport.is_active()):
                raise EOFError("connection lost before the command exited")
            break
        drain()
        if chan.status_event.is_set():
            continue  # the exit status arrived meanwhile: collect it above
        if chan.closed or not chan.get_transport().is_active():  # type: ignore[union-attr]
            if chan.status_event.is_set():
                continue
            raise EOFError("channel closed before the command exited")
        if timeout is not None and time.monotonic() - start > timeout:
            break
    if code is not None:
        # sshd may send the exit status before the last output: read on until EOF.
        chan.settimeout(10.0)
        try:
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                out.append(data)
        except TimeoutError:  # pragma: no cover - a server that never sends EOF
            pass
    drain()
    return (b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace"), code)


def _remove_quietly(sftp: paramiko.SFTPClient, tmp: str | None, private: str | None) -> None:
    """Remove the upload's temp file (and private directory) if still there."""
    for fn, path in ((sftp.remove, tmp), (sftp.rmdir, private)):
        if path is None:
            continue
        try:
            fn(path)
        except (OSError, EOFError, paramiko.SSHException):  # gone already (moved), or no connection
            continue


def _host_down(e: BaseException) -> bool:
    """No answer at all (connect timed out, no route): retrying would only multiply the wait.
    Refused or reset connections (sshd restarting, a reboot) are retried."""
    if isinstance(e, socket.timeout | TimeoutError):
        return True
    return isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN)


def _describe(e: BaseException | None) -> str:
    if e is None:
        return "unknown error"
    if isinstance(e, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    if isinstance(e, EOFError):
        return "connection closed (EOF)"
    if isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        return "no route to host"
    text = str(e) or type(e).__name__
    return text
