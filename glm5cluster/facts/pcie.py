"""PCIe Access Control Services on the host's PCI bridges (``lspci -vvv`` as root), for
preflight's ``fabric`` check: ACS redirect on a PCIe switch sends GPU-GPU and GPU-NIC
peer-to-peer traffic up to the CPU root complex (slow P2P, NCCL hangs).

Parsed from real captures (tests/facts/pcie/SOURCES.md): one block per device, the header
``BB:DD.F PCI bridge: ...``, the port type from ``Express (v2) Downstream Port``, the control
bits from ``ACSCtl:\tSrcValid+ TransBlk- ...``; ``Capabilities: <access denied>`` when not root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact

NO_LSPCI = "glm5cluster: no lspci"
_HEADER = re.compile(r"^([0-9a-fA-F:.]+) (.+?): (.*)$")
_EXPRESS = re.compile(r"Express \((?:v\d+)\) (Root Port|Upstream Port|Downstream Port|Endpoint|Legacy Endpoint)"
                      r"|Express (Root Port|Upstream Port|Downstream Port|Endpoint)")
_FLAG = re.compile(r"([A-Za-z]+)([+-])")


@dataclass(frozen=True)
class Bridge:
    address: str  # "03:02.0" (or with the domain, lspci -D)
    name: str
    port: str  # "Downstream Port", "Upstream Port", "Root Port", "" when not shown
    acs_ctl: dict[str, bool] | None  # None: no ACS capability shown
    denied: bool = False  # extended capabilities not readable (lspci not run as root)

    @property
    def switch_port(self) -> bool:
        return self.port in ("Downstream Port", "Upstream Port")

    @property
    def acs_on(self) -> list[str]:
        return [k for k, v in (self.acs_ctl or {}).items() if v]


@dataclass(frozen=True)
class Pcie:
    available: bool  # lspci ran
    bridges: tuple[Bridge, ...] = ()


def parse_lspci(text: str) -> tuple[Bridge, ...]:
    """The PCI bridges of ``lspci -vvv`` output (other devices are skipped)."""
    out: list[Bridge] = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = block.splitlines()
        if not lines:
            continue
        m = _HEADER.match(lines[0])
        if not m or "bridge" not in m.group(2).lower():
            continue
        port, ctl, denied = "", None, False
        for ln in lines[1:]:
            s = ln.strip()
            if (e := _EXPRESS.search(s)) and s.startswith("Capabilities:"):
                port = e.group(1) or e.group(2) or ""
            elif s.startswith("ACSCtl:"):
                ctl = {k: v == "+" for k, v in _FLAG.findall(s.removeprefix("ACSCtl:"))}
            elif s == "Capabilities: <access denied>":
                denied = True
        out.append(Bridge(m.group(1), m.group(3), port, ctl, denied))
    return tuple(out)


class PcieFact(Fact[Pcie]):
    name = "pcie"

    def command(self) -> Shell:
        # class 0604: PCI-to-PCI bridges only (switch and root ports); root reads the extended
        # capabilities (ACS); an lspci without -d class filters lists everything (parsed alike)
        return Shell.sh(f"command -v lspci >/dev/null 2>&1 || {{ echo '{NO_LSPCI}'; exit 0; }}; "
                        "lspci -vvv -d ::0604 2>/dev/null || lspci -vvv", sudo=True, timeout=30,
                        description="PCIe bridges (lspci -vvv)")

    def parse(self, result: CommandResult) -> Pcie:
        if NO_LSPCI in result.stdout or not result.ok:
            return Pcie(False)
        return Pcie(True, parse_lspci(result.stdout))
