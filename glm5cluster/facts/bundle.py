"""The host-facts bundle: OS, kernel, GPUs and driver, Python, Docker, systemd, memlock and disk
free at some paths, gathered by ONE shell command (one SSH round trip) with delimited sections.

    fact = HostFactsFact(disk_paths=("/", "/models/glm5"), gpu_vendor="auto")
    shell = fact.command()            # one Shell (sudo=True: docker info and 0600 files need root)
    facts = fact.parse(result)        # HostFacts
    facts.gpu.status, facts.gpu.count, facts.disk["/models/glm5"].avail_bytes, facts.summary()

Each part is an ordinary fact (``OsFact``, ``NvidiaGpus``, ...) run as a section of
``facts.sections.section_script``, so every part parses exactly what it would parse alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.amd import AmdGpus
from glm5cluster.facts.base import Fact
from glm5cluster.facts.batch import FactBatch
from glm5cluster.facts.disk import DiskFree, DiskFreeFact, human_bytes
from glm5cluster.facts.docker import DockerFact, DockerInfo
from glm5cluster.facts.gpu_types import GpuState, GpuStatus
from glm5cluster.facts.nvidia import NvidiaGpus
from glm5cluster.facts.system import (
    Memlock,
    MemlockFact,
    OsFact,
    OsInfo,
    PythonFact,
    PythonInfo,
    SystemdFact,
    SystemdInfo,
)

GpuVendor = Literal["nvidia", "amd", "auto", "none"]


@dataclass(frozen=True)
class HostFacts:
    os: OsInfo
    python: PythonInfo
    docker: DockerInfo
    systemd: SystemdInfo
    memlock: Memlock
    nvidia: GpuState | None = None
    amd: GpuState | None = None
    disk: Mapping[str, DiskFree] = field(default_factory=dict)

    @property
    def gpu(self) -> GpuState:
        """The GPU state that matters: a vendor whose tool answered, else the most telling failure."""
        states = [s for s in (self.nvidia, self.amd) if s is not None]
        for s in states:
            if s.ok and s.gpus:
                return s
        for s in states:
            if s.status is not GpuStatus.NO_DRIVER:
                return s
        return states[0] if states else GpuState(GpuStatus.NO_DRIVER, "none", detail="not gathered")

    def summary(self) -> str:
        """One line for logs and the recap."""
        o = self.os
        parts = [f"{o.pretty_name or o.id + ' ' + o.version_id} ({o.family}), kernel {o.kernel} {o.arch}"]
        g = self.gpu
        if g.ok:
            names = sorted({x.name for x in g.gpus}) or ["no GPUs"]
            parts.append(f"{g.count}x {'/'.join(names)}, driver {g.driver_version or '?'}")
        else:
            parts.append(f"GPU {g.status.value}: {g.detail}")
        py = self.python
        parts.append(f"python {py.version}" if py.present else "no python3")
        d = self.docker
        parts.append(f"docker {d.server_version}" if d.up else f"docker {d.daemon}")
        parts.append(f"systemd {self.systemd.state}")
        for path, free in self.disk.items():
            parts.append(f"{human_bytes(free.avail_bytes)} free at {path}" if free.avail_bytes is not None
                         else f"disk at {path}: {free.error}")
        return "; ".join(parts)


class HostFactsFact(Fact[HostFacts]):
    """All basic facts in one command. ``gpu_vendor``: which GPU tools to ask ("auto": both;
    each part only checks ``command -v`` when its tool is absent, so the cost is nil)."""

    name = "host_facts"

    def __init__(self, disk_paths: Sequence[str] = ("/",), gpu_vendor: GpuVendor = "auto") -> None:
        self.disk_paths = tuple(dict.fromkeys(disk_paths))
        self.gpu_vendor = gpu_vendor
        parts: dict[str, Fact[Any]] = {
            "os": OsFact(), "python": PythonFact(), "docker": DockerFact(),
            "systemd": SystemdFact(), "memlock": MemlockFact(),
        }
        if gpu_vendor in ("nvidia", "auto"):
            parts["nvidia"] = NvidiaGpus()
        if gpu_vendor in ("amd", "auto"):
            parts["amd"] = AmdGpus()
        for i, path in enumerate(self.disk_paths):
            parts[f"disk{i}"] = DiskFreeFact(path)
        self._batch = FactBatch(parts, prefix="hostfacts")

    def key(self) -> str:
        return f"{self.name}:{self.gpu_vendor}:{','.join(self.disk_paths)}"

    def command(self) -> Shell:
        inner = self._batch.command()
        return Shell.sh(inner.command_line(), sudo=True, timeout=inner.timeout,
                        description=f"gather host facts ({', '.join(self.disk_paths)})")

    def parse(self, result: CommandResult) -> HostFacts:
        v = self._batch.parse(result)
        return HostFacts(
            os=v["os"], python=v["python"], docker=v["docker"], systemd=v["systemd"],
            memlock=v["memlock"], nvidia=v.get("nvidia"), amd=v.get("amd"),
            disk={path: v[f"disk{i}"] for i, path in enumerate(self.disk_paths)},
        )
