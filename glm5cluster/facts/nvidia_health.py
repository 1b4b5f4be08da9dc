"""NVIDIA verification facts: ``nvidia-smi -q`` health (persistence, ECC, remapped rows, fabric),
the loaded kernel module (``/proc/driver/nvidia/version``), the installed driver packages and the
fabric manager."""

from __future__ import annotations

import re
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.gpu_types import GpuStatus
from glm5cluster.facts.nvidia import NOT_FOUND_MSG, classify_failure

_KV = re.compile(r"^(\s*)(\S.*?)\s+:\s?(.*)$")


def parse_smi_q(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """``nvidia-smi -q`` as (top-level values, one flat dict per GPU).

    Keys are paths joined with "/" following the 4-space indentation, e.g.
    ``"ECC Mode/Current"`` or ``"Remapped Rows/Pending"``; each GPU dict has ``"bus_id"``.
    """
    top: dict[str, str] = {}
    gpus: list[dict[str, str]] = []
    path: list[str] = []
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("="):
            continue
        m_gpu = re.match(r"^GPU ([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\.[0-9A-Fa-f])\s*$", raw)
        if m_gpu:
            gpus.append({"bus_id": m_gpu.group(1)})
            path = []
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        level = indent // 4 - (1 if gpus else 0)
        m = _KV.match(raw)
        key = (m.group(2) if m else raw.strip()).strip()
        path = path[: max(level, 0)]
        if m:
            full = "/".join([*path, key])
            (gpus[-1] if gpus else top)[full] = m.group(3).strip()
        else:
            path.append(key)
    return top, gpus


def _int(v: str | None) -> int | None:
    return int(v) if v is not None and v.strip().isdigit() else None


def _yes(v: str | None) -> bool | None:
    if v is None or v in ("N/A", "[N/A]"):
        return None
    return v.strip().lower() in ("yes", "enabled", "on")


@dataclass(frozen=True)
class GpuHealth:
    bus_id: str
    name: str | None
    uuid: str | None
    persistence: bool | None
    ecc_enabled: bool | None
    ecc_uncorrected_volatile: int | None
    ecc_uncorrected_aggregate: int | None
    remap_pending: bool | None
    remap_failure: bool | None
    remap_uncorrectable: int | None
    fabric_state: str | None  # "Completed" on NVSwitch systems; "N/A" without
    fabric_status: str | None

    def problems(self) -> list[str]:
        """Human lines for what the verification table calls unhealthy."""
        out = []
        if self.persistence is False:
            out.append("persistence mode is off")
        if self.ecc_enabled is False:
            out.append("ECC is disabled")
        if self.ecc_uncorrected_volatile:
            out.append(f"{self.ecc_uncorrected_volatile} uncorrected volatile ECC errors")
        if self.remap_pending:
            out.append("a row remap is pending (reset the GPU or reboot)")
        if self.remap_failure:
            out.append("row remapping failed (hardware fault)")
        if self.fabric_state not in (None, "N/A", "Completed") or self.fabric_status not in (None, "N/A", "Success"):
            out.append(f"NVLink fabric state {self.fabric_state}, status {self.fabric_status}")
        return out


@dataclass(frozen=True)
class NvidiaHealth:
    status: GpuStatus
    detail: str = ""
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: tuple[GpuHealth, ...] = ()


def health_from_q(text: str) -> NvidiaHealth:
    top, gpus = parse_smi_q(text)
    out = []
    for g in gpus:
        dram_v = g.get("ECC Errors/Volatile/DRAM Uncorrectable") or g.get("ECC Errors/Volatile/Double Bit/Total")
        dram_a = g.get("ECC Errors/Aggregate/DRAM Uncorrectable") or g.get("ECC Errors/Aggregate/Double Bit/Total")
        out.append(GpuHealth(
            bus_id=g["bus_id"],
            name=g.get("Product Name"),
            uuid=g.get("GPU UUID"),
            persistence=_yes(g.get("Persistence Mode")),
            ecc_enabled=_yes(g.get("ECC Mode/Current")),
            ecc_uncorrected_volatile=_int(dram_v),
            ecc_uncorrected_aggregate=_int(dram_a),
            remap_pending=_yes(g.get("Remapped Rows/Pending")),
            remap_failure=_yes(g.get("Remapped Rows/Remapping Failure Occurred")),
            remap_uncorrectable=_int(g.get("Remapped Rows/Uncorrectable Error")),
            fabric_state=g.get("Fabric/State"),
            fabric_status=g.get("Fabric/Status"),
        ))
    return NvidiaHealth(GpuStatus.OK, driver_version=top.get("Driver Version"),
                        cuda_version=top.get("CUDA Version"), gpus=tuple(out))


class NvidiaHealthFact(Fact[NvidiaHealth]):
    """``nvidia-smi -q``: persistence, ECC, remapped rows and fabric state per GPU."""

    name = "nvidia_health"

    def command(self) -> Shell:
        return Shell.sh(
            f"command -v nvidia-smi >/dev/null 2>&1 || {{ echo '{NOT_FOUND_MSG}' >&2; exit 127; }}\n"
            "timeout 60 nvidia-smi -q",
            timeout=70,
        )

    def parse(self, result: CommandResult) -> NvidiaHealth:
        failed = classify_failure(result)
        if failed is not None:
            return NvidiaHealth(failed.status, detail=failed.detail, driver_version=failed.driver_version)
        return health_from_q(result.stdout)


@dataclass(frozen=True)
class KernelModule:
    """The loaded NVIDIA kernel module, from /proc/driver/nvidia/version."""

    loaded: bool
    version: str | None = None
    flavor: str | None = None  # "open" | "proprietary"


def parse_proc_version(result: CommandResult) -> KernelModule:
    m = re.search(r"^NVRM version:\s*(.*?)\s{2,}(\d+\.\d+(?:\.\d+)?)\s", result.stdout + " ", re.M)
    if not result.ok or m is None:
        return KernelModule(loaded=False)
    flavor = "open" if "Open Kernel Module" in m.group(1) else "proprietary"
    return KernelModule(loaded=True, version=m.group(2), flavor=flavor)


class NvidiaKernelModule(Fact[KernelModule]):
    name = "nvidia_kernel_module"

    def command(self) -> Shell:
        return Shell.cmd("cat", "/proc/driver/nvidia/version")

    def parse(self, result: CommandResult) -> KernelModule:
        return parse_proc_version(result)


@dataclass(frozen=True)
class DriverPackages:
    """Installed NVIDIA driver packages (name, version) and the driver version they carry."""

    manager: str | None  # "dpkg" | "rpm" | None (neither found)
    packages: tuple[tuple[str, str], ...] = ()
    driver_version: str | None = None


DEB_PATTERNS = ("nvidia-driver*", "nvidia-open*", "cuda-drivers*", "libnvidia-compute-*", "nvidia-kernel-*")
RPM_PATTERNS = ("nvidia-driver*", "kmod-nvidia*", "nvidia-open*", "cuda-drivers*")
_DPKG_FMT = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"


def _upstream(version: str) -> str:
    v = version.split(":", 1)[-1]
    return v.split("-", 1)[0]


def parse_driver_packages(result: CommandResult) -> DriverPackages:
    lines = result.stdout.splitlines()
    manager = lines[0].strip() if lines and lines[0].strip() in ("dpkg", "rpm") else None
    pkgs: list[tuple[str, str]] = []
    for line in lines[1:]:
        cells = line.split("\t")
        if len(cells) >= 3 and cells[2].strip()[:2] in ("ii", "hi") and cells[1]:
            pkgs.append((cells[0], cells[1]))
    counts: dict[str, int] = {}
    for _, ver in pkgs:
        up = _upstream(ver)
        if re.fullmatch(r"\d{3}\.\d+(\.\d+)?", up):
            counts[up] = counts.get(up, 0) + 1
    driver = max(counts, key=lambda v: (counts[v], v)) if counts else None
    return DriverPackages(manager, tuple(sorted(pkgs)), driver)


class NvidiaDriverPackages(Fact[DriverPackages]):
    name = "nvidia_driver_packages"

    def command(self) -> Shell:
        deb = " ".join(f"'{p}'" for p in DEB_PATTERNS)
        rpm = " ".join(f"'{p}'" for p in RPM_PATTERNS)
        return Shell.sh(
            "if command -v dpkg-query >/dev/null 2>&1; then echo dpkg; "
            f"dpkg-query -W -f='{_DPKG_FMT}' {deb} 2>/dev/null; "
            "elif command -v rpm >/dev/null 2>&1; then echo rpm; "
            f"rpm -qa --qf '%{{NAME}}\\t%{{VERSION}}-%{{RELEASE}}\\tii\\n' {rpm} 2>/dev/null; "
            "else echo none; fi; exit 0"
        )

    def parse(self, result: CommandResult) -> DriverPackages:
        return parse_driver_packages(result)


@dataclass(frozen=True)
class FabricManager:
    installed: bool  # the unit file exists
    active: str  # systemctl is-active: "active", "inactive", "failed", ...
    version: str | None = None


def parse_fabric_manager(result: CommandResult) -> FabricManager:
    vals = dict(re.findall(r"^(load|active)=(.*)$", result.stdout, re.M))
    ver = re.search(r"Fabric Manager version is\s*:\s*(\S+)", result.stdout)
    load = vals.get("load", "").strip()
    return FabricManager(
        installed=load not in ("", "not-found"),
        active=vals.get("active", "").strip() or "unknown",
        version=ver.group(1) if ver else None,
    )


class NvidiaFabricManager(Fact[FabricManager]):
    name = "nvidia_fabricmanager"

    def command(self) -> Shell:
        return Shell.sh(
            'printf "load=%s\\n" "$(systemctl show -p LoadState --value nvidia-fabricmanager 2>/dev/null)"\n'
            'printf "active=%s\\n" "$(systemctl is-active nvidia-fabricmanager 2>/dev/null)"\n'
            "if command -v nv-fabricmanager >/dev/null 2>&1; then nv-fabricmanager -v 2>&1 | head -n 3; fi\n"
            "exit 0"
        )

    def parse(self, result: CommandResult) -> FabricManager:
        return parse_fabric_manager(result)
