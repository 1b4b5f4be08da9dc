"""Resolved per-host records: the inventory's defaults applied to each host once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from glm5cluster.model.inventory import GpuKind, Inventory, SshSettings


@dataclass(frozen=True)
class SshTarget:
    """Everything a transport needs to reach one host."""

    address: str
    user: str = "root"
    port: int = 22
    identity_file: str | None = None
    known_hosts: str | None = None
    jump_host: str | None = None
    connect_timeout: float = 10.0
    command_timeout: float | None = None
    config_file: str | None = None
    sudo: bool = False  # run privileged commands through `sudo -n` (non-root users)

    @property
    def needs_sudo(self) -> bool:
        return self.sudo or self.user != "root"


@dataclass(frozen=True)
class Node:
    name: str
    ssh: SshTarget
    cluster_address: str
    interface: str | None
    gpu_kind: GpuKind
    gpu_count: int
    labels: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()


def _pick(*values: object) -> object:
    for v in values:
        if v is not None:
            return v
    return None


def _expand(path: str | None, base_dir: str | None) -> str | None:
    if path is None:
        return None
    path = os.path.expanduser(path)
    if not os.path.isabs(path) and base_dir:
        path = os.path.join(base_dir, path)
    return path


def resolve_ssh(defaults: SshSettings, own: SshSettings, address: str, base_dir: str | None = None) -> SshTarget:
    user = _pick(own.user, defaults.user, "root")
    return SshTarget(
        address=address,
        user=str(user),
        port=int(_pick(own.port, defaults.port, 22)),  # type: ignore[call-overload]
        identity_file=_expand(_pick(own.identity_file, defaults.identity_file), base_dir),  # type: ignore[arg-type]
        known_hosts=_expand(_pick(own.known_hosts, defaults.known_hosts), base_dir),  # type: ignore[arg-type]
        jump_host=_pick(own.jump_host, defaults.jump_host),  # type: ignore[arg-type]
        connect_timeout=float(_pick(own.connect_timeout, defaults.connect_timeout, 10.0)),  # type: ignore[arg-type]
        command_timeout=_pick(own.command_timeout, defaults.command_timeout),  # type: ignore[arg-type]
        config_file=_expand(_pick(own.config_file, defaults.config_file), base_dir),  # type: ignore[arg-type]
        sudo=bool(_pick(own.sudo, defaults.sudo, False)),
    )


def resolve_nodes(inv: Inventory, base_dir: str | None = None) -> list[Node]:
    """Apply cluster defaults to every host. GPU kind must come from the host or the cluster.

    ``base_dir`` resolves relative paths (identity file, known_hosts) against the inventory's folder.
    """
    membership: dict[str, list[str]] = {}
    for group, members in inv.groups.items():
        for m in members:
            membership.setdefault(m, []).append(group)
    nodes = []
    for h in inv.hosts:
        gpu = h.gpu or inv.cluster.gpu
        if gpu is None:
            raise ValueError(f"host {h.name} has no gpu and the cluster sets no default")
        nodes.append(
            Node(
                name=h.name,
                ssh=resolve_ssh(inv.ssh, h.ssh, h.address, base_dir),
                cluster_address=h.cluster_address or h.address,
                interface=h.interface or inv.cluster.interface,
                gpu_kind=gpu.kind,
                gpu_count=gpu.count,
                labels=dict(h.labels),
                groups=tuple(sorted(membership.get(h.name, []))),
            )
        )
    return nodes
