"""Where things live on a lab network: one place for every address and port of the lab.

Host ``node-N`` sits at ``.<HOST_OFFSET + N - 1>`` of the lab subnet (``.11``, ``.12``, ...);
``.2``-``.9`` are reserved for the mirrors (apt repository, registry, package index,
model hub). The mirror ports below are placeholders until the mirror host exists: the mirror
engineer owns them and changes them here only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_SUBNET = "172.28.77.0/24"
HOST_OFFSET = 11  # node-1 -> .11
MIRROR_OFFSET = 2  # the mirror host -> .2 (.2-.9 reserved for mirrors)
MAX_HOSTS = 64
# The lab archive key (lab/data/mirror-key): the lab inventories pin it for the CUDA and
# container toolkit repositories the mirror serves (stack.nvidia.*_key_fingerprints).
LAB_KEY_FINGERPRINT = "B97D0872BF1B3B8B9DFFA27743C93F402B0260FA"

# Mirror services on the mirror host (placeholders; see the module docstring).
APT_PORT = 8081
PYPI_PORT = 8082
HUB_PORT = 8083
REGISTRY_PORT = 5000


def _network(subnet: str) -> ipaddress.IPv4Network:
    net = ipaddress.IPv4Network(subnet, strict=True)
    if net.num_addresses < HOST_OFFSET + 2:
        raise ValueError(f"subnet {subnet} is too small for a lab (need at least a /27)")
    return net


def host_address(subnet: str, index: int) -> str:
    """Address of ``node-<index>`` (1-based)."""
    net = _network(subnet)
    addr = net.network_address + HOST_OFFSET + index - 1
    if addr >= net.broadcast_address:
        raise ValueError(f"subnet {subnet} has no room for host {index}")
    return str(addr)


def gateway_address(subnet: str) -> str:
    return str(_network(subnet).network_address + 1)


def mirror_address(subnet: str, offset: int = 0) -> str:
    """Address of a mirror host: ``.2`` (offset 0) up to ``.9`` (offset 7)."""
    if not 0 <= offset <= 7:
        raise ValueError("mirror offsets are 0..7 (.2-.9)")
    return str(_network(subnet).network_address + MIRROR_OFFSET + offset)


@dataclass(frozen=True)
class MirrorEndpoints:
    """The URLs lab hosts (and the lab inventory) use to reach the lab mirrors."""

    address: str
    apt: str
    pypi: str
    hub: str
    registry: str  # host:port, as Docker names registries


def mirror_endpoints(subnet: str = DEFAULT_SUBNET) -> MirrorEndpoints:
    addr = mirror_address(subnet)
    return MirrorEndpoints(
        address=addr,
        apt=f"http://{addr}:{APT_PORT}",
        pypi=f"http://{addr}:{PYPI_PORT}/simple",
        hub=f"http://{addr}:{HUB_PORT}",
        registry=f"{addr}:{REGISTRY_PORT}",
    )
