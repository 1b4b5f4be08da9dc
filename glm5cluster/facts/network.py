"""Listening TCP ports (``ss -Hltn``) and interface addresses (``ip -j addr``), for preflight."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact, FactError


@dataclass(frozen=True)
class Listener:
    address: str  # "0.0.0.0", "::", "127.0.0.53%lo", "*"
    port: int


def parse_ss_listen(text: str) -> tuple[Listener, ...]:
    """``ss -Hltn`` rows: State Recv-Q Send-Q Local:Port Peer:Port [Process]."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 4 or not cols[0].startswith("LISTEN"):
            continue
        host, _, port = cols[3].rpartition(":")
        if not port.isdigit():
            continue
        out.append(Listener(host.strip("[]"), int(port)))
    return tuple(out)


@dataclass(frozen=True)
class Listening:
    listeners: tuple[Listener, ...]

    def listening(self, port: int) -> bool:
        return any(x.port == port for x in self.listeners)


class ListeningPortsFact(Fact[Listening]):
    name = "listening_ports"

    def command(self) -> Shell:
        return Shell.cmd("ss", "-Hltn")

    def parse(self, result: CommandResult) -> Listening:
        if not result.ok:
            raise FactError(self.name, result.tail(3) or f"exit code {result.exit_code}")
        return Listening(parse_ss_listen(result.stdout))


@dataclass(frozen=True)
class Interface:
    name: str
    up: bool
    mtu: int | None
    addresses: tuple[str, ...]  # "10.0.0.5/24", "fe80::1/64"


def parse_ip_addr(text: str) -> tuple[Interface, ...]:
    data: Any = json.loads(text or "[]")
    out = []
    for item in data:
        if "ifname" not in item:
            continue
        addrs = tuple(f"{a['local']}/{a.get('prefixlen', '')}".rstrip("/")
                      for a in item.get("addr_info", []) if "local" in a)
        flags = item.get("flags", [])
        out.append(Interface(item["ifname"], item.get("operstate") == "UP" or "UP" in flags and
                             "LOWER_UP" in flags, item.get("mtu"), addrs))
    return tuple(out)


@dataclass(frozen=True)
class Interfaces:
    interfaces: tuple[Interface, ...]

    def by_name(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def with_address(self, address: str) -> Interface | None:
        return next((i for i in self.interfaces if any(a.split("/")[0] == address for a in i.addresses)), None)


class InterfacesFact(Fact[Interfaces]):
    name = "interfaces"

    def command(self) -> Shell:
        return Shell.cmd("ip", "-j", "addr")

    def parse(self, result: CommandResult) -> Interfaces:
        if not result.ok:
            raise FactError(self.name, result.tail(3) or f"exit code {result.exit_code}")
        return Interfaces(parse_ip_addr(result.stdout))


@dataclass(frozen=True)
class Route:
    """``ip -j route get ADDR``: the interface (and source address) the kernel picks for ADDR."""

    destination: str
    device: str  # "" when there is no route
    source: str
    error: str = ""


def parse_route_get(destination: str, result: CommandResult) -> Route:
    if not result.ok:
        return Route(destination, "", "", result.tail(1) or f"exit code {result.exit_code}")
    data: Any = json.loads(result.stdout or "[]")
    first = data[0] if isinstance(data, list) and data else {}
    return Route(destination, str(first.get("dev", "")), str(first.get("prefsrc", "")))


class RouteFact(Fact[Route]):
    name = "route"

    def __init__(self, destination: str) -> None:
        self.destination = destination

    def command(self) -> Shell:
        return Shell.cmd("ip", "-j", "route", "get", self.destination)

    def parse(self, result: CommandResult) -> Route:
        return parse_route_get(self.destination, result)


class HostnameFact(Fact[str]):
    """The kernel's host name (``uname -n``): what NCCL and Gloo put in their peer tables."""

    name = "hostname"

    def command(self) -> Shell:
        return Shell.cmd("uname", "-n")

    def parse(self, result: CommandResult) -> str:
        if not result.ok:
            raise FactError(self.name, result.tail(3) or f"exit code {result.exit_code}")
        return result.stdout.strip()
