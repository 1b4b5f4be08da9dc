"""NVIDIA GPUs: ``nvidia-smi --query-gpu`` (CSV), with the plain table as a fallback, and the
driver failure states (no tool, module not loaded, library/module mismatch)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.gpu_types import GpuInfo, GpuState, GpuStatus, gpu_kind

QUERY_FIELDS = (
    "index", "name", "uuid", "pci.bus_id", "memory.total", "driver_version", "compute_cap",
    "persistence_mode",
)
NOT_FOUND_MSG = "glm5cluster: nvidia-smi not found"
TABLE_MARK = "@@glm5cluster:nvidia-smi-table@@"

QUERY_SCRIPT = (
    f"command -v nvidia-smi >/dev/null 2>&1 || {{ echo '{NOT_FOUND_MSG}' >&2; exit 127; }}\n"
    f"timeout 30 nvidia-smi --query-gpu={','.join(QUERY_FIELDS)} --format=csv,noheader,nounits; rc=$?\n"
    # an old nvidia-smi refuses a field it does not know (exit 2): fall back to the table
    f"if [ $rc -eq 2 ]; then echo '{TABLE_MARK}'; timeout 30 nvidia-smi; rc=$?; fi\n"
    "exit $rc"
)

_NA = {"", "[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]"}


def _value(raw: str) -> str | None:
    v = raw.strip()
    return None if v.lower() in _NA else v


def _mib(raw: str | None) -> int | None:
    if raw is None:
        return None
    m = re.match(r"^(\d+)(\s*MiB)?$", raw.strip())
    return int(m.group(1)) if m else None


def _header_fields(line: str) -> tuple[str, ...]:
    return tuple(re.sub(r"\s*\[.*?\]$", "", f.strip()) for f in line.split(","))


def query_rows(text: str, fields: Sequence[str] = QUERY_FIELDS) -> list[dict[str, str | None]]:
    """Rows of ``--query-gpu`` output as field -> value (None for N/A), with or without header
    and units. A header line (first cell ``index``, ``name`` or ``uuid``) sets the field order;
    otherwise ``fields`` does."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].split(",")[0].strip() in ("index", "name", "uuid"):
        fields = _header_fields(lines[0])
        lines = lines[1:]
    rows = []
    for line in lines:
        cells = line.split(",")
        if len(cells) != len(fields):
            raise ValueError(f"nvidia-smi row has {len(cells)} fields, expected {len(fields)}: {line!r}")
        rows.append({f: _value(c) for f, c in zip(fields, cells, strict=True)})
    return rows


def gpus_from_rows(rows: Sequence[dict[str, str | None]]) -> list[GpuInfo]:
    gpus = []
    for n, row in enumerate(rows):
        name = row.get("name") or ""
        persistence = row.get("persistence_mode")
        index = row.get("index")
        gpus.append(GpuInfo(
            index=int(index) if index is not None else n,
            name=name,
            kind=gpu_kind(name),
            memory_mib=_mib(row.get("memory.total")),
            uuid=row.get("uuid"),
            bus_id=row.get("pci.bus_id"),
            arch=row.get("compute_cap"),
            persistence=None if persistence is None else persistence.lower() in ("enabled", "on"),
        ))
    return gpus


def _driver(rows: Sequence[dict[str, str | None]]) -> str | None:
    versions = sorted({v for r in rows if (v := r.get("driver_version"))})
    return ",".join(versions) or None


_HEADER_RE = re.compile(r"NVIDIA-SMI\s+(\S+)\s+Driver Version:\s+(\S+)(?:\s+CUDA Version:\s+(\S+))?")
_ROW_RE = re.compile(r"^\|\s+(\d+)\s+(.+?)\s+(On|Off)\s+\|\s+([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\.[0-9A-Fa-f])\s")
_MEM_RE = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


def parse_smi_table(text: str) -> GpuState:
    """The plain ``nvidia-smi`` table: driver and CUDA version from the header, one GpuInfo per
    GPU row (index, name, persistence, bus id) with total memory from the row below it."""
    header = _HEADER_RE.search(text)
    lines = text.splitlines()
    gpus: list[GpuInfo] = []
    for i, line in enumerate(lines):
        m = _ROW_RE.match(line)
        if not m:
            continue
        mem = _MEM_RE.search(lines[i + 1]) if i + 1 < len(lines) else None
        name = m.group(2).strip()
        gpus.append(GpuInfo(
            index=int(m.group(1)),
            name=name,
            kind=gpu_kind(name),
            memory_mib=int(mem.group(2)) if mem else None,
            bus_id=m.group(4),
            persistence=m.group(3) == "On",
        ))
    if header is None and not gpus:
        raise ValueError("not an nvidia-smi table")
    return GpuState(
        status=GpuStatus.OK,
        vendor="nvidia",
        gpus=tuple(gpus),
        driver_version=header.group(2) if header else None,
        cuda_version=header.group(3) if header else None,
    )


def classify_failure(result: CommandResult) -> GpuState | None:
    """The driver failure states, from nvidia-smi's own words; None when it did not fail."""
    text = (result.stdout + "\n" + result.stderr).strip()
    detail = text.splitlines()[0].strip() if text else f"exit code {result.exit_code}"
    if result.exit_code == 127 or NOT_FOUND_MSG in text or "nvidia-smi: not found" in text \
            or "nvidia-smi: command not found" in text:
        return GpuState(GpuStatus.NO_DRIVER, "nvidia", detail="nvidia-smi not found")
    if "Driver/library version mismatch" in text:
        lib = re.search(r"NVML library version:\s*(\S+)", text)
        return GpuState(GpuStatus.MISMATCH, "nvidia", detail=detail,
                        driver_version=lib.group(1) if lib else None)
    if "couldn't communicate with the NVIDIA driver" in text:
        return GpuState(GpuStatus.NOT_LOADED, "nvidia", detail=detail)
    if "No devices were found" in text:
        return GpuState(GpuStatus.OK, "nvidia", detail="No devices were found")
    if result.exit_code == 124:
        return GpuState(GpuStatus.ERROR, "nvidia", detail="nvidia-smi timed out after 30 s")
    if not result.ok:
        return GpuState(GpuStatus.ERROR, "nvidia", detail=result.tail(3) or detail)
    return None


def parse_nvidia(result: CommandResult, fields: Sequence[str] = QUERY_FIELDS) -> GpuState:
    """Parse the query fact's result: failure states, the CSV rows, or the table fallback."""
    failed = classify_failure(result)
    if failed is not None:
        return failed
    out = result.stdout
    if TABLE_MARK in out:
        out = out.split(TABLE_MARK, 1)[1]
    if "NVIDIA-SMI" in out and "|" in out:
        return parse_smi_table(out)
    try:
        rows = query_rows(out, fields)
    except ValueError as exc:
        return GpuState(GpuStatus.ERROR, "nvidia", detail=f"unreadable nvidia-smi output: {exc}")
    return GpuState(GpuStatus.OK, "nvidia", gpus=tuple(gpus_from_rows(rows)), driver_version=_driver(rows))


class NvidiaGpus(Fact[GpuState]):
    """GPU list and driver state from ``nvidia-smi --query-gpu=...`` (see ``QUERY_FIELDS``)."""

    name = "nvidia_gpus"

    def command(self) -> Shell:
        return Shell.sh(QUERY_SCRIPT, timeout=70, description="nvidia-smi --query-gpu")

    def parse(self, result: CommandResult) -> GpuState:
        return parse_nvidia(result)


class NvidiaSmiTable(Fact[GpuState]):
    """The plain ``nvidia-smi`` table (for a driver too old for the query fields)."""

    name = "nvidia_smi_table"

    def command(self) -> Shell:
        return Shell.sh(
            f"command -v nvidia-smi >/dev/null 2>&1 || {{ echo '{NOT_FOUND_MSG}' >&2; exit 127; }}\n"
            "timeout 30 nvidia-smi",
            timeout=40,
        )

    def parse(self, result: CommandResult) -> GpuState:
        failed = classify_failure(result)
        if failed is not None:
            return failed
        try:
            return parse_smi_table(result.stdout)
        except ValueError as exc:
            return GpuState(GpuStatus.ERROR, "nvidia", detail=str(exc))
