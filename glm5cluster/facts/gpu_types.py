"""The GPU records every GPU fact returns, and the name -> GpuKind mapping."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from glm5cluster.model.catalog import CATALOG
from glm5cluster.model.inventory import GpuKind


class GpuStatus(StrEnum):
    """What the GPU tool said about the driver.

    ``no_driver``: the tool is not installed. ``not_loaded``: the tool is there but cannot reach
    a kernel module ("couldn't communicate with the NVIDIA driver": not loaded, or the install
    needs a reboot). ``mismatch``: user-space library and loaded module differ ("Driver/library
    version mismatch": reboot). ``error``: anything else; ``detail`` says what.
    """

    OK = "ok"
    NO_DRIVER = "no_driver"
    NOT_LOADED = "not_loaded"
    MISMATCH = "mismatch"
    ERROR = "error"


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    kind: GpuKind | None  # None: a GPU this project does not target (GH200, MI300A, MI350X...)
    memory_mib: int | None = None
    uuid: str | None = None
    bus_id: str | None = None
    arch: str | None = None  # NVIDIA compute capability ("9.0") or AMD gfx target ("gfx942")
    persistence: bool | None = None


@dataclass(frozen=True)
class GpuState:
    status: GpuStatus
    vendor: str  # "nvidia" | "amd"
    gpus: tuple[GpuInfo, ...] = ()
    driver_version: str | None = None  # loaded driver; for ``mismatch``: the NVML library's version
    detail: str = ""  # the tool's own message when status is not ok (or "No devices were found")
    cuda_version: str | None = None  # from the nvidia-smi table header; ROCm version for AMD

    @property
    def ok(self) -> bool:
        return self.status is GpuStatus.OK

    @property
    def count(self) -> int:
        return len(self.gpus)

    @property
    def kinds(self) -> frozenset[GpuKind | None]:
        return frozenset(g.kind for g in self.gpus)


# every kind the catalog knows, NVIDIA's first (a new kind needs no edit here)
_KINDS = sorted(CATALOG, key=lambda k: (CATALOG[k].vendor != "nvidia", k.value))
_PATTERNS = [(re.compile(rf"(?<![A-Z0-9]){k.value}(?![A-Z0-9])"), k) for k in _KINDS]


def gpu_kind(name: str) -> GpuKind | None:
    """'NVIDIA H200' -> H200, 'NVIDIA H100 80GB HBM3' -> H100, 'AMD Instinct Mi325X VF' -> MI325X.

    Whole tokens only: 'NVIDIA GH200 480GB' and 'GB200' are not H200/B200.
    """
    upper = name.upper()
    for pattern, kind in _PATTERNS:
        if pattern.search(upper):
            return kind
    return None
