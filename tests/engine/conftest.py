"""Engine test fixtures: a throwaway OpenSSH server on 127.0.0.1 for connect/ tests (no lab).

Needs /usr/sbin/sshd (package openssh-server); tests skip when it is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalSshd:
    port: int
    dir: Path
    client_key: Path
    host_pub: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


def start_sshd(base: Path, port: int | None = None, host_key: Path | None = None,
               extra: str = "") -> LocalSshd:
    base.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)
    if host_key is None:
        host_key = base / "host_ed25519"
        if not host_key.exists():
            keygen(host_key)
    client = base / "client_ed25519"
    if not client.exists():
        keygen(client)
    auth = base / "authorized_keys"
    auth.write_text(client.with_suffix(".pub").read_text())
    auth.chmod(0o600)
    port = port or free_port()
    cfg = base / "sshd_config"
    cfg.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nListenAddress 127.0.0.2\nHostKey {host_key}\nPidFile {base}/sshd.pid\n"
        f"AuthorizedKeysFile {auth}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        f"PermitRootLogin prohibit-password\nMaxStartups 100:30:200\nMaxSessions 100\n"
        f"Subsystem sftp internal-sftp\nLogLevel ERROR\n{extra}"
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    known = base / "known_hosts"
    pub = host_key.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{port},[127.0.0.2]:{port} {pub[0]} {pub[1]}\n")
    return LocalSshd(port, base, client, host_key.with_suffix(".pub"), known, proc)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[LocalSshd]:
    if not os.path.exists(SSHD):
        pytest.skip("sshd not installed (apt-get install openssh-server)")
    server = start_sshd(tmp_path / "sshd")
    yield server
    server.stop()
