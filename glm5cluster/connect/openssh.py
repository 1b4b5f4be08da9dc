"""The OpenSSH transport: the system ``ssh`` client with one ControlMaster per host per run.

Selected with ``--transport openssh`` (or ``GLM5CLUSTER_TRANSPORT=openssh``). Host keys stay
strict: ``StrictHostKeyChecking=yes`` (``accept-new`` only with ``--accept-new-host-keys``, which
records into the inventory's known_hosts, the first ``UserKnownHostsFile``); ssh refuses a
changed key by itself, and the refusal becomes a ``HostKeyError``. The master connection is
opened once (``ssh -M -N -f``) and every command is multiplexed over it; ``close`` ends it.
Uploads travel on stdin (``cat > tmp; chmod; chown; mv``), through sudo for non-root users.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import threading
import time

from glm5cluster.commands import CommandResult, Shell, Upload
from glm5cluster.connect.hostkeys import USER_KNOWN_HOSTS
from glm5cluster.connect.sshconfig import Endpoint
from glm5cluster.errors import HostKeyError, TransportError
from glm5cluster.model.nodes import SshTarget

_CONTROL_ROOT: str | None = None
_ROOT_LOCK = threading.Lock()


def _control_root() -> str:
    global _CONTROL_ROOT
    with _ROOT_LOCK:
        if _CONTROL_ROOT is None:
            _CONTROL_ROOT = tempfile.mkdtemp(prefix="glm5-ssh-")  # 0700, short path for the socket
        return _CONTROL_ROOT


class OpenSshConnection:
    def __init__(self, host: str, endpoint: Endpoint, target: SshTarget, options: object) -> None:
        self.host = host
        self.endpoint = endpoint
        self.target = target
        self.accept_new = bool(getattr(options, "accept_new_host_keys", False))
        self.attempts = int(getattr(options, "connect_attempts", 3))
        self.retry_delay = float(getattr(options, "retry_delay", 1.0))
        user_kh = getattr(options, "user_known_hosts", USER_KNOWN_HOSTS)
        files = [f for f in (target.known_hosts, *endpoint.known_hosts, user_kh) if f]
        self.known_files = [os.path.expanduser(f) for f in files]
        self.needs_sudo = target.needs_sudo
        self.control = os.path.join(_control_root(), f"{host}.sock")
        self._master = False
        self._lock = threading.Lock()

    def _strict(self, ep: Endpoint) -> list[str]:
        """The options every hop gets: the same known_hosts, strict checking, no prompts."""
        argv = ["-o", "BatchMode=yes",
                "-o", f"StrictHostKeyChecking={'accept-new' if self.accept_new else 'yes'}",
                "-o", "UserKnownHostsFile=" + (" ".join(shlex.quote(f) for f in self.known_files) or "/dev/null"),
                "-o", "HashKnownHosts=yes",
                "-o", f"ConnectTimeout={int(self.target.connect_timeout)}"]
        if self.target.config_file:
            argv += ["-F", self.target.config_file]
        for ident in ep.identity_files:
            argv += ["-i", ident, "-o", "IdentitiesOnly=yes"]
        return argv

    def _proxy(self, dest: Endpoint, jumps: tuple[Endpoint, ...]) -> list[str]:
        """Reach ``dest`` through ``jumps`` with a ProxyCommand per hop: ``-J`` would start the
        jump's ssh without these options (its host key checked against other files, or not)."""
        if not jumps:
            return []
        *before, last = jumps
        host = f"[{dest.host}]" if ":" in dest.host else dest.host
        inner = ["ssh", *self._strict(last), *self._proxy(last, tuple(before)), "-p", str(last.port),
                 "-l", last.user, "-W", f"{host}:{dest.port}", last.host]
        # ssh expands %-tokens in ProxyCommand once per level: escape them at every level
        return ["-o", "ProxyCommand=" + shlex.join(inner).replace("%", "%%")]

    def _base(self) -> list[str]:
        ep = self.endpoint
        return ["ssh", *self._strict(ep), "-o", f"ControlPath={self.control}", "-p", str(ep.port),
                "-l", ep.user, *self._proxy(ep, ep.jumps)]

    def _ensure_master(self) -> None:
        with self._lock:
            if self._master:
                return
            last = ""
            for attempt in range(max(1, self.attempts)):
                argv = [*self._base(), "-o", "ControlMaster=yes", "-o", "ControlPersist=600",
                        "-N", "-f", self.endpoint.host]
                p = subprocess.run(argv, capture_output=True, text=True, check=False,  # noqa: S603
                                   timeout=self.target.connect_timeout * 2 + 5, start_new_session=True)
                if p.returncode == 0:
                    self._master = True
                    return
                last = p.stderr.strip()
                if "IDENTIFICATION HAS CHANGED" in last or "Host key verification failed" in last \
                        or "No ED25519 host key is known" in last or "host key for" in last.lower():
                    changed = "CHANGED" in last
                    raise HostKeyError(
                        f"host key for {self.endpoint.label} ({self.endpoint.host}:{self.endpoint.port}) "
                        f"{'CHANGED' if changed else 'is unknown'}: refusing to connect. ssh said: "
                        f"{last.splitlines()[-1] if last else ''}",
                        hint=("check the fingerprint out of band; for a new host re-run with "
                              "--accept-new-host-keys, for a re-installed one remove the old entry "
                              "with ssh-keygen -R first"))
                if "Permission denied" in last:
                    break
                if "timed out" in last or "No route to host" in last:
                    break  # no answer cost a whole ConnectTimeout already: name the host now
                if attempt + 1 < self.attempts:
                    time.sleep(self.retry_delay * (attempt + 1))
            raise TransportError(f"{self.host}: cannot connect to {self.endpoint.user}@"
                                 f"{self.endpoint.host}:{self.endpoint.port}: {last[-300:]}",
                                 hint="check that the host is up and sshd listens there")

    def run(self, cmd: Shell) -> CommandResult:
        self._ensure_master()
        line = cmd.full_command_line(use_sudo=self.needs_sudo)
        timeout = cmd.effective_timeout(self.target.command_timeout)
        argv = [*self._base(), "-o", "ControlMaster=no", self.endpoint.host, line]
        start = time.monotonic()
        try:
            # its own session: a Ctrl-C on the terminal reaches glm5cluster, which ends the
            # commands itself (and cleans up), not every ssh child at once
            p = subprocess.run(argv, input=cmd.stdin_bytes() or b"", capture_output=True,  # noqa: S603
                               timeout=timeout, check=False, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            return CommandResult(cmd.display(), 124, (e.stdout or b"").decode(errors="replace"),
                                 f"timed out after {timeout}s", time.monotonic() - start)
        err = p.stderr.decode(errors="replace")
        if p.returncode == 255 and ("mux_client" in err or "Connection" in err or "closed by" in err):
            self._master = False
            raise TransportError(f"{self.host}: connection lost: {err.strip()[-300:]}")
        return CommandResult(cmd.display(), p.returncode, p.stdout.decode(errors="replace"), err,
                             time.monotonic() - start)

    def put(self, upload: Upload) -> CommandResult:
        dest = shlex.quote(upload.dest)
        template = shlex.quote(os.path.dirname(upload.dest) + "/.glm5cluster.XXXXXX")
        owner = upload.owner or ""
        chown = f"{owner}:{upload.group}" if upload.group else owner
        script = (f"set -e; umask 077; t=$(mktemp {template}); trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; "
                  f"chmod {upload.mode:o} \"$t\"; "
                  + (f"chown {shlex.quote(chown)} \"$t\"; " if chown else "")
                  + f"mv -f \"$t\" {dest}; trap - EXIT")
        shell = Shell.sh(script, sudo=upload.sudo, description=upload.display())
        return self._run_bytes(shell, upload.content)

    def _run_bytes(self, shell: Shell, data: bytes) -> CommandResult:
        self._ensure_master()
        argv = [*self._base(), "-o", "ControlMaster=no", self.endpoint.host,
                shell.full_command_line(use_sudo=self.needs_sudo)]
        start = time.monotonic()
        timeout = shell.effective_timeout(self.target.command_timeout)
        try:
            p = subprocess.run(argv, input=data, capture_output=True, check=False, timeout=timeout,  # noqa: S603
                               start_new_session=True)
        except subprocess.TimeoutExpired:
            return CommandResult(shell.display(), 124, "", f"timed out after {timeout}s", time.monotonic() - start)
        return CommandResult(shell.display(), p.returncode, p.stdout.decode(errors="replace"),
                             p.stderr.decode(errors="replace"), time.monotonic() - start)

    def close(self) -> None:
        with self._lock:
            if self._master:
                subprocess.run([*self._base(), "-O", "exit", self.endpoint.host],
                               capture_output=True, check=False, timeout=10)
                self._master = False
