"""AMD GPUs: ``amd-smi`` (static text and JSON, list, version), ``rocminfo`` and the
``rocm-smi`` concise table, all mapped to the same ``GpuState`` as NVIDIA."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.gpu_types import GpuInfo, GpuState, GpuStatus, gpu_kind
from glm5cluster.facts.sections import section_script, split_sections


def _blocks(text: str, head: str) -> list[tuple[int, list[str]]]:
    """Split ``amd-smi`` text at lines ``<head>: N`` (column 0)."""
    out: list[tuple[int, list[str]]] = []
    for line in text.splitlines():
        m = re.match(rf"^{head}:\s*(\d+)\s*$", line)
        if m:
            out.append((int(m.group(1)), []))
        elif out and not line.startswith(("CPU:", "----")):
            out[-1][1].append(line)
    return out


def _paths(lines: list[str]) -> dict[str, str]:
    """Indented ``KEY: value`` lines -> {"ASIC/MARKET_NAME": "..."} (4 spaces a level)."""
    flat: dict[str, str] = {}
    path: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        level = (len(line) - len(line.lstrip(" "))) // 4 - 1
        key, _, value = line.strip().partition(":")
        path = path[: max(level, 0)]
        if value.strip():
            flat["/".join([*path, key.strip()])] = value.strip()
        else:
            path.append(key.strip())
    return flat


def _mb_to_mib(v: str | None) -> int | None:
    m = re.match(r"^(\d+)\s*MB$", v or "")
    return int(m.group(1)) if m else None


def parse_amd_smi_static(text: str) -> list[GpuInfo]:
    """``amd-smi static`` text: market name, gfx target (newer versions), BDF, VRAM size."""
    gpus = []
    for index, lines in _blocks(text, "GPU"):
        f = _paths(lines)
        name = f.get("ASIC/MARKET_NAME", "")
        gpus.append(GpuInfo(
            index=index, name=name, kind=gpu_kind(name),
            memory_mib=_mb_to_mib(f.get("VRAM/SIZE")),
            bus_id=f.get("BUS/BDF"), arch=f.get("ASIC/TARGET_GRAPHICS_VERSION"),
        ))
    return gpus


def static_driver_version(text: str) -> str | None:
    m = re.search(r"^\s+DRIVER:\s*\n\s+NAME: amdgpu\s*\n\s+VERSION:\s*(\S+)", text, re.M)
    return m.group(1) if m else None


def parse_amd_smi_static_json(text: str) -> list[GpuInfo]:
    """``amd-smi static --json``: the newer ``{"gpu_data": [...]}`` wrapper or a bare list."""
    data: Any = json.loads(text)
    items = data.get("gpu_data", []) if isinstance(data, dict) else data
    gpus = []
    for n, item in enumerate(items):
        asic = item.get("asic", {})
        size = item.get("vram", {}).get("size")
        mib = size.get("value") if isinstance(size, dict) else None
        unit = size.get("unit") if isinstance(size, dict) else None
        name = str(asic.get("market_name", ""))
        gpus.append(GpuInfo(
            index=int(item.get("gpu", n)), name=name, kind=gpu_kind(name),
            memory_mib=int(mib) if isinstance(mib, int) and unit == "MB" else None,
            bus_id=item.get("bus", {}).get("bdf"), arch=asic.get("target_graphics_version"),
        ))
    return gpus


def parse_amd_smi_list(text: str) -> list[GpuInfo]:
    """``amd-smi list``: index, BDF and UUID (no names)."""
    gpus = []
    for index, lines in _blocks(text, "GPU"):
        f = _paths(lines)
        gpus.append(GpuInfo(index=index, name="", kind=None, uuid=f.get("UUID"), bus_id=f.get("BDF")))
    return gpus


@dataclass(frozen=True)
class AmdSmiVersion:
    tool: str | None
    library: str | None
    rocm: str | None
    amdgpu: str | None


def parse_amd_smi_version(text: str) -> AmdSmiVersion:
    fields = {}
    for part in text.strip().split("|"):
        key, _, value = part.partition(":")
        fields[key.strip()] = value.strip() or None
    amdgpu = fields.get("amdgpu version")
    if amdgpu and not re.fullmatch(r"[\d.]+(-\S+)?", amdgpu):
        amdgpu = None  # inbox driver: the field holds a squashed /proc/version string
    return AmdSmiVersion(fields.get("AMDSMI Tool"), fields.get("AMDSMI Library version"),
                         fields.get("ROCm version"), amdgpu)


def parse_rocminfo(text: str) -> list[GpuInfo]:
    """``rocminfo``: GPU agents (Device Type GPU) with gfx name, marketing name and uuid."""
    gpus: list[GpuInfo] = []
    for block in re.split(r"^\*{7}\s*\nAgent \d+\s*\n\*{7}\s*$", text, flags=re.M)[1:]:
        fields = dict(re.findall(r"^  (\S[^:\n]*?):\s+(.*?)\s*$", block, re.M))
        if fields.get("Device Type") != "GPU":
            continue
        name = fields.get("Marketing Name", "")
        gpus.append(GpuInfo(index=len(gpus), name=name, kind=gpu_kind(name),
                            uuid=fields.get("Uuid"), arch=fields.get("Name")))
    return gpus


def parse_rocm_smi(text: str) -> list[GpuInfo]:
    """The ``rocm-smi`` concise table: device rows followed by a line with the (20-char) name."""
    gpus = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\d+)\s+(?:\d+\s+)?\[(0x[0-9a-fA-F]+)\s*:\s*(0x[0-9a-fA-F]+)\]", line)
        if not m:
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        name = nxt.strip() if nxt.startswith(" ") and not nxt.strip().startswith("=") else ""
        gpus.append(GpuInfo(index=int(m.group(1)), name=name, kind=gpu_kind(name)))
    return gpus


PARTS = (
    ("version", "amd-smi version 2>&1"),
    ("static", "timeout 60 amd-smi static --asic --bus --vram --driver"),
    ("rocminfo", "command -v rocminfo >/dev/null 2>&1 || exit 127\ntimeout 60 rocminfo"),
)
AMD_SCRIPT = (
    "if command -v amd-smi >/dev/null 2>&1; then\n"
    + section_script(PARTS[:2], final_exit=False)
    + "\nelse\n"
    + section_script(PARTS[2:], final_exit=False)
    + "\nfi\nexit 0"
)


def _not_loaded(text: str) -> bool:
    low = text.lower()
    return "not loaded" in low or "modprobe amdgpu" in low or "driver_not_loaded" in low


def parse_amd(result: CommandResult) -> GpuState:
    parts = split_sections(result)
    if not parts:
        return GpuState(GpuStatus.ERROR, "amd", detail=result.tail(3) or "no output")
    if "static" in parts:
        static, version = parts["static"], parts.get("version")
        said = static.stdout + static.stderr
        if not static.ok or ("GPU:" not in static.stdout and _not_loaded(said)):
            status = GpuStatus.NOT_LOADED if _not_loaded(said) else GpuStatus.ERROR
            return GpuState(status, "amd", detail=static.tail(3))
        ver = parse_amd_smi_version(version.stdout) if version and version.ok else None
        return GpuState(GpuStatus.OK, "amd", gpus=tuple(parse_amd_smi_static(static.stdout)),
                        driver_version=static_driver_version(static.stdout) or (ver.amdgpu if ver else None),
                        cuda_version=ver.rocm if ver else None)
    info = parts["rocminfo"]
    if info.exit_code == 127:
        return GpuState(GpuStatus.NO_DRIVER, "amd", detail="neither amd-smi nor rocminfo found")
    if "ROCk module is NOT loaded" in info.stdout + info.stderr or _not_loaded(info.stderr):
        return GpuState(GpuStatus.NOT_LOADED, "amd", detail="ROCk module is NOT loaded")
    if not info.ok:
        return GpuState(GpuStatus.ERROR, "amd", detail=info.tail(3))
    return GpuState(GpuStatus.OK, "amd", gpus=tuple(parse_rocminfo(info.stdout)))


class AmdGpus(Fact[GpuState]):
    """AMD GPUs from ``amd-smi static`` (+ ``amd-smi version``), or ``rocminfo`` without amd-smi."""

    name = "amd_gpus"

    def command(self) -> Shell:
        return Shell.sh(AMD_SCRIPT, timeout=130, description="amd-smi static / rocminfo")

    def parse(self, result: CommandResult) -> GpuState:
        return parse_amd(result)
