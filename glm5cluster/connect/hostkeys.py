"""Strict host-key checking for the SSH transports.

Keys are looked up in the inventory's known_hosts file first, then in ``~/.ssh/known_hosts``.
An unknown key is refused with its fingerprint and the exact commands to trust it; with
``accept_new`` it is recorded into the inventory's known_hosts file (or the user's when the
inventory names none), hashed (as ``HashKnownHosts yes``) in a 0600 file. A *changed* key is
always refused, and so is a key listed under ``@revoked``; ``@cert-authority`` lines are skipped
with a warning (host certificates are not used). Host-key algorithms are offered in the order
OpenSSH uses: the types known_hosts holds for the host first (an RSA key is negotiated as
rsa-sha2-512/256, never reported as "changed" because the host also has an ed25519 key).
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from glm5cluster.errors import HostKeyError

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
_WRITE_LOCK = threading.Lock()
_WARNED: set[str] = set()
# the key type known_hosts stores -> the host-key algorithms that verify it
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def _warn_once(text: str) -> None:
    if text not in _WARNED:
        _WARNED.add(text)
        print(f"warning: {text}", file=sys.stderr)


def load_known_hosts(path: str) -> tuple[paramiko.HostKeys, list[paramiko.PKey]]:
    """The plain entries of a known_hosts file, and the keys it lists as ``@revoked``.
    ``@cert-authority`` lines are skipped (with a warning); unreadable lines are skipped."""
    keys = paramiko.HostKeys()
    revoked: list[paramiko.PKey] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = line.split(None, 1)[0] if line.startswith("@") else ""
        if marker == "@cert-authority":
            _warn_once(f"{path}:{n}: @cert-authority line skipped (host certificates are not used: "
                       f"list the hosts' own keys)")
            continue
        body = line.split(None, 1)[1] if marker else line
        try:
            entry = HostKeyEntry.from_line(body, n)
        except (InvalidHostKey, paramiko.SSHException, ValueError):
            continue
        if entry is None:
            continue
        if marker == "@revoked":
            revoked.append(entry.key)
        elif not marker:
            keys._entries.append(entry)  # type: ignore[attr-defined]  # keeps patterns and hashed names
        else:
            _warn_once(f"{path}:{n}: unknown marker {marker} skipped")
    return keys, revoked


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

    def _load(self, path: str) -> tuple[paramiko.HostKeys, list[paramiko.PKey]] | None:
        if not os.path.exists(path):
            return None
        try:
            return load_known_hosts(path)
        except OSError:  # pragma: no cover - unreadable file
            return None

    def revoked(self, key: paramiko.PKey) -> str | None:
        """The file that lists ``key`` under ``@revoked``, if any (for any host: never accepted)."""
        for path in self.files:
            got = self._load(path)
            if got is not None and any(k.asbytes() == key.asbytes() for k in got[1]):
                return path
        return None

    def known_keys(self, host: str, port: int) -> dict[str, paramiko.PKey]:
        """Key type -> key for this host, first file that knows the host wins per type."""
        entry = host_entry(host, port)
        found: dict[str, paramiko.PKey] = {}
        for path in self.files:
            got = self._load(path)
            if got is None:
                continue
            match = got[0].lookup(entry)
            if match is None:
                continue
            for ktype in match.keys():
                found.setdefault(ktype, match[ktype])
        return found

    def preferred_key_types(self, host: str, port: int, offered: Sequence[str]) -> list[str]:
        """Negotiate a key type we can verify: the known ones first (as OpenSSH does)."""
        known = {alg for t in self.known_keys(host, port) for alg in _ALGORITHMS.get(t, (t,))}
        first = [t for t in offered if t in known]
        return first + [t for t in offered if t not in first]

    def verify(self, host: str, port: int, key: paramiko.PKey, label: str = "") -> None:
        """Raise ``HostKeyError`` unless ``key`` is the recorded key for ``host:port``."""
        who = label or host_entry(host, port)
        fp = fingerprint(key)
        ktype = key.get_name()
        listed = self.revoked(key)
        if listed is not None:
            raise HostKeyError(
                f"host key for {who} is REVOKED: {ktype} {fp} is listed under @revoked in {listed}. "
                f"Refusing to connect.",
                hint="the key was revoked on purpose: re-key the host (new host key), check it out of band")
        known = self.known_keys(host, port)
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
        """Append the key, its host name hashed (``HashKnownHosts yes``), to a 0600 file."""
        hashed = paramiko.HostKeys.hash_host(host_entry(host, port))
        line = f"{hashed} {key.get_name()} {key.get_base64()}\n"
        with _WRITE_LOCK:
            parent = os.path.dirname(self.record_file)
            if parent:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            needs_nl = False
            if os.path.exists(self.record_file) and os.path.getsize(self.record_file) > 0:
                with open(self.record_file, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    needs_nl = f.read(1) != b"\n"
            fd = os.open(self.record_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(("\n" if needs_nl else "") + line)

    def _file_holding(self, host: str, port: int) -> str:
        entry = host_entry(host, port)
        for path in self.files:
            got = self._load(path)
            if got is not None and got[0].lookup(entry) is not None:
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
