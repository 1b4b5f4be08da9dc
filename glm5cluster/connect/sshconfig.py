"""Where to connect: an inventory ``SshTarget`` merged with ``~/.ssh/config``.

Precedence is OpenSSH's (command line over config), with the inventory as the command line:
a value the inventory sets explicitly wins; a value left at its default (user root, port 22,
no identity file, no jump host) is taken from the ssh config's ``Host`` block when it has one.
Supported keywords: HostName, User, Port, IdentityFile, ProxyJump, UserKnownHostsFile.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import paramiko

from glm5cluster.errors import InputError
from glm5cluster.model.nodes import SshTarget

DEFAULT_CONFIG = "~/.ssh/config"
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
_JUMP_RE = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:\s]+)(?::(?P<port>\d{1,5}))?$")


@dataclass(frozen=True)
class Endpoint:
    """A fully resolved SSH endpoint (``jumps`` are connected through in order)."""

    label: str  # the name the user gave (for messages)
    host: str
    port: int = 22
    user: str = "root"
    identity_files: tuple[str, ...] = ()
    jumps: tuple[Endpoint, ...] = field(default=())
    known_hosts: tuple[str, ...] = ()  # extra files from the ssh config


def _load_config(path: str | None) -> paramiko.SSHConfig | None:
    path = os.path.expanduser(path or DEFAULT_CONFIG)
    if not os.path.exists(path):
        return None
    return paramiko.SSHConfig.from_path(path)


def parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    m = _JUMP_RE.match(spec.strip())
    if not m:
        raise InputError(f"jump host {spec!r} is not [user@]host[:port]")
    host = m.group("host").strip("[]")
    port = int(m.group("port")) if m.group("port") else None
    return m.group("user"), host, port


def resolve(target: SshTarget, config_file: str | None = None, _depth: int = 0) -> Endpoint:
    """Merge the inventory's target with the ssh config (``target.config_file`` or ~/.ssh/config)."""
    cfg = _load_config(config_file or target.config_file)
    entry = cfg.lookup(target.address) if cfg else {}
    host = str(entry.get("hostname", target.address))
    user = target.user if target.user != "root" else str(entry.get("user", "root"))
    port = target.port if target.port != 22 else int(entry.get("port", 22))
    if target.identity_file:
        identities: tuple[str, ...] = (target.identity_file,)
    else:
        identities = tuple(os.path.expanduser(p) for p in entry.get("identityfile", []))
    extra_known = tuple(os.path.expanduser(p) for p in str(entry.get("userknownhostsfile", "")).split() if p)
    jump_spec = target.jump_host or entry.get("proxyjump")
    jumps: tuple[Endpoint, ...] = ()
    if jump_spec and str(jump_spec).lower() != "none":
        if _depth > 3:
            raise InputError(f"jump host chain for {target.address} is too deep (loop?)")
        chain: list[Endpoint] = []
        for hop in str(jump_spec).split(","):
            juser, jhost, jport = parse_jump(hop)
            hop_target = SshTarget(address=jhost, user=juser or "root", port=jport or 22,
                                   known_hosts=target.known_hosts,
                                   connect_timeout=target.connect_timeout)
            resolved = resolve(hop_target, config_file or target.config_file, _depth + 1)
            # A hop's own ProxyJump is honoured by flattening it in front of the hop.
            chain.extend(resolved.jumps)
            chain.append(Endpoint(label=hop.strip(), host=resolved.host, port=resolved.port,
                                  user=juser or resolved.user,
                                  identity_files=resolved.identity_files or identities,
                                  known_hosts=resolved.known_hosts))
        jumps = tuple(chain)
    return Endpoint(label=target.address, host=host, port=port, user=user,
                    identity_files=identities, jumps=jumps, known_hosts=extra_known)
