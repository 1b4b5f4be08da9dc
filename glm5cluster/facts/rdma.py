"""RDMA host channel adapters: ``ibstat`` (ports, state, rate, link layer), ``show_gids`` (the GID
table with RoCE v1/v2 and IPv4) and ``ibdev2netdev`` (device to netdev). Parsers are tested on real
captures in ``tests/facts/rdma/``; a host without HCAs answers "no HCA" (the checks then skip RDMA).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.sections import section_script, split_sections


@dataclass(frozen=True)
class HcaPort:
    device: str  # mlx5_0
    port: int
    state: str  # Active, Down, Initializing
    physical: str  # LinkUp, Disabled, Polling
    rate_gbit: int  # 400 (NDR / 400G), 200, 100
    link_layer: str  # InfiniBand | Ethernet

    @property
    def active(self) -> bool:
        return self.state.lower() == "active"


def parse_ibstat(text: str) -> tuple[HcaPort, ...]:
    """``ibstat``: ``CA 'mlx5_0'`` blocks, each with ``Port N:`` sub-blocks (tab- or space-indented)."""
    out: list[HcaPort] = []
    dev, port = "", 0
    fields: dict[str, str] = {}

    def flush() -> None:
        if dev and port:
            rate = fields.get("Rate", "0").split()[0]
            out.append(HcaPort(dev, port, fields.get("State", "?"), fields.get("Physical state", "?"),
                               int(rate) if rate.isdigit() else 0, fields.get("Link layer", "?")))

    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^CA '([^']+)'$", line)
        if m:
            flush()
            dev, port, fields = m.group(1), 0, {}
            continue
        m = re.match(r"^Port (\d+):$", line)
        if m:
            flush()
            port, fields = int(m.group(1)), {}
            continue
        key, sep, value = line.partition(":")
        if sep and port:
            fields[key.strip()] = value.strip()
    flush()
    return tuple(out)


@dataclass(frozen=True)
class Gid:
    device: str
    port: int
    index: int
    gid: str
    ipv4: str  # "" for link-local GIDs
    version: str  # v1 | v2
    netdev: str


def parse_show_gids(text: str) -> tuple[Gid, ...]:
    """``show_gids``: DEV PORT INDEX GID [IPv4] VER DEV rows (tab separated, empty IPv4 columns)."""
    out = []
    for line in text.splitlines():
        cols = [c.strip() for c in line.split("\t") if c.strip()]
        if len(cols) < 5 or not cols[1].isdigit() or not cols[2].isdigit():
            continue
        ver = next((c for c in cols[3:] if re.fullmatch(r"v[12]", c)), "")
        ipv4 = next((c for c in cols[4:] if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", c)), "")
        netdev = cols[-1] if cols[-1] != ver else ""
        out.append(Gid(cols[0], int(cols[1]), int(cols[2]), cols[3], ipv4, ver, netdev))
    return tuple(out)


def parse_ibdev2netdev(text: str) -> dict[str, tuple[str, bool]]:
    """``ibdev2netdev``: ``mlx5_0 port 1 ==> ens108np0 (Up)`` -> {device: (netdev, up)}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+) port \d+ ==> (\S+) \((\w+)\)", line.strip())
        if m:
            out[m.group(1)] = (m.group(2), m.group(3).lower() == "up")
    return out


@dataclass(frozen=True)
class Rdma:
    ports: tuple[HcaPort, ...]
    gids: tuple[Gid, ...]
    dev_infiniband: bool  # /dev/infiniband exists on the host

    @property
    def present(self) -> bool:
        return bool(self.ports)

    def devices(self) -> list[str]:
        return sorted({p.device for p in self.ports})

    def roce_v2_index(self, device: str) -> int | None:
        """Lowest GID index of ``device`` that is RoCE v2 with an IPv4 address (what
        NCCL_IB_GID_INDEX should be on RoCE; NCCL's default 0 is the link-local v1 GID)."""
        idx = [g.index for g in self.gids if g.device == device and g.version == "v2" and g.ipv4]
        return min(idx) if idx else None


class RdmaFact(Fact[Rdma]):
    name = "rdma"

    def command(self) -> Shell:
        return Shell.sh(section_script([
            ("ibstat", "command -v ibstat >/dev/null 2>&1 && ibstat || true"),
            ("gids", "command -v show_gids >/dev/null 2>&1 && show_gids || true"),
            ("devib", "test -d /dev/infiniband && echo yes || echo no"),
        ]), description="RDMA adapters (ibstat, show_gids)")

    def parse(self, result: CommandResult) -> Rdma:
        parts = split_sections(result)
        text = {k: v.stdout for k, v in parts.items()}
        return Rdma(parse_ibstat(text.get("ibstat", "")), parse_show_gids(text.get("gids", "")),
                    text.get("devib", "").strip() == "yes")
