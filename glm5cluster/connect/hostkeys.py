"""Strict host-key checking for the SSH transports.

Keys are looked up in the inventory's known_hosts file first, then in ``~/.ssh/known_hosts``.
An unknown key is refused with its fingerprint and the exact commands to trust it; with
``accept_new`` it is recorded into the inventory's known_hosts file (or the user's when the
inventory names none). A *changed* key is always refused.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko

from glm5cluster.errors import HostKeyError

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
_WRITE_LOCK = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    """The name a host is filed under in known_hosts (``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class KnownHosts:
    """The known_hosts files consulted for one connection, in order."""

    files: tuple[str, ...]
    record_file: str  # where --accept-new-host-keys writes
    accept_new: bool = False

    @classmethod
    def for_target(cls, inventory_file: str | None, accept_new: bool = False,
                   user_file: str | None = USER_KNOWN_HOSTS) -> KnownHosts:
        files = [f for f in (inventory_file, user_file) if f]
        expanded = tuple(os.path.expanduser(f) for f in files)
        record = expanded[0] if expanded else os.path.expanduser(USER_KNOWN_HOSTS)
        return cls(files=expanded, record_file=record, accept_new=accept_new)

    def known_keys(self, host: str, port: int) -> dict[str, paramiko.PKey]:
        """Key type -> key for this host, first file that knows the host wins per type."""
        entry = host_entry(host, port)
        found: dict[str, paramiko.PKey] = {}
        for path in self.files:
            if not os.path.exists(path):
                continue
            keys = paramiko.HostKeys()
            try:
                keys.load(path)
            except (OSError, paramiko.SSHException):  # pragma: no cover - unreadable file
                continue
            match = keys.lookup(entry)
            if match is None:
                continue
            for ktype in match.keys():
                found.setdefault(ktype, match[ktype])
        return found

    def preferred_key_types(self, host: str, port: int, offered: Sequence[str]) -> list[str]:
        """Negotiate a key type we can verify: the known ones first (as OpenSSH does)."""
        known = list(self.known_keys(host, port))
        first = [t for t in offered if t in known]
        return first + [t for t in offered if t not in first]

    def verify(self, host: str, port: int, key: paramiko.PKey, label: str = "") -> None:
        """Raise ``HostKeyError`` unless ``key`` is the recorded key for ``host:port``."""
        who = label or host_entry(host, port)
        known = self.known_keys(host, port)
        fp = fingerprint(key)
        ktype = key.get_name()
        if ktype in known:
            if known[ktype].asbytes() == key.asbytes():
                return
            expected = fingerprint(known[ktype])
            raise HostKeyError(
                f"host key for {who} CHANGED: known_hosts has {ktype} {expected}, the host "
                f"now offers {fp}. Refusing to connect (someone may be intercepting, or the host "
                f"was re-installed).",
                hint=(f"check the new fingerprint out of band (on the host: ssh-keygen -lf "
                      f"/etc/ssh/ssh_host_{_file_type(ktype)}_key.pub); if it is right, remove the "
                      f"old entry with `ssh-keygen -R {_q(host_entry(host, port))} -f "
                      f"{_q(self._file_holding(host, port))}` and run again with "
                      f"--accept-new-host-keys"),
            )
        if known:
            # Known under other key types only, and the host no longer offers them: treat as a
            # changed key (OpenSSH does the same), never as a new one.
            others = ", ".join(f"{t} {fingerprint(k)}" for t, k in known.items())
            raise HostKeyError(
                f"host key for {who} CHANGED: known_hosts has {others}, the host now offers "
                f"{ktype} {fp} only. Refusing to connect.",
                hint=(f"check the new fingerprint out of band; if it is right, remove the old "
                      f"entry with `ssh-keygen -R {_q(host_entry(host, port))} -f "
                      f"{_q(self._file_holding(host, port))}` and run again with "
                      f"--accept-new-host-keys"),
            )
        if self.accept_new:
            self.record(host, port, key)
            return
        raise HostKeyError(
            f"host key for {who} is unknown: {ktype} {fp}. Refusing to connect to an "
            f"unverified host.",
            hint=(f"check the fingerprint out of band, then either run again with "
                  f"--accept-new-host-keys (records it in {self.record_file}) or run "
                  f"`ssh-keyscan -t {_scan_type(ktype)} -p {port} {_q(host)} >> "
                  f"{_q(self.record_file)}`"),
        )

    def record(self, host: str, port: int, key: paramiko.PKey) -> None:
        line = f"{host_entry(host, port)} {key.get_name()} {key.get_base64()}\n"
        with _WRITE_LOCK:
            parent = os.path.dirname(self.record_file)
            if parent:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            needs_nl = False
            if os.path.exists(self.record_file) and os.path.getsize(self.record_file) > 0:
                with open(self.record_file, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    needs_nl = f.read(1) != b"\n"
            fd = os.open(self.record_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            with os.fdopen(fd, "a") as f:
                f.write(("\n" if needs_nl else "") + line)

    def _file_holding(self, host: str, port: int) -> str:
        entry = host_entry(host, port)
        for path in self.files:
            if os.path.exists(path):
                keys = paramiko.HostKeys()
                try:
                    keys.load(path)
                except (OSError, paramiko.SSHException):  # pragma: no cover
                    continue
                if keys.lookup(entry) is not None:
                    return path
        return self.record_file


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _file_type(ktype: str) -> str:
    if ktype.startswith("ecdsa"):
        return "ecdsa"
    if ktype.startswith("rsa") or ktype == "ssh-rsa":
        return "rsa"
    return "ed25519"


def _scan_type(ktype: str) -> str:
    return _file_type(ktype)
