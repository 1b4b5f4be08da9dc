"""Shared helpers for the fact tests: the parser table, JSON conversion and partial matching.

A ``cases.json`` in a ``tests/facts/<fact>/`` folder lists cases::

    {"parser": "nvidia", "cases": [
        {"name": "...", "stdout_file": "x.txt" | "stdout": "...",
         "stderr_file" | "stderr": "...", "exit_code": 0, "args": {...},
         "stdout_prefix": "...",  # what our command prints before the tool's own output
         "hand_made": true,   # only for trivial outputs; the rest are real captures
         "expected": {...}}]}

``expected`` is matched partially: every key given must match (recursively); lists must have
the same length. The value is the parser's result converted with ``to_jsonable``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from glm5cluster.commands import CommandResult
from glm5cluster.facts import amd, docker, network, nvidia, nvidia_health, system
from glm5cluster.facts.disk import parse_disk_free
from glm5cluster.facts.paths import parse_path_state
from glm5cluster.facts.units import parse_unit_state

HERE = Path(__file__).parent

Parser = Callable[[CommandResult, Mapping[str, Any]], Any]

PARSERS: dict[str, Parser] = {
    "nvidia": lambda r, a: nvidia.parse_nvidia(r, tuple(a.get("fields", nvidia.QUERY_FIELDS))),
    "nvidia_table": lambda r, a: nvidia.NvidiaSmiTable().parse(r),
    "nvidia_health": lambda r, a: nvidia_health.NvidiaHealthFact().parse(r),
    "proc_version": lambda r, a: nvidia_health.parse_proc_version(r),
    "driver_packages": lambda r, a: nvidia_health.parse_driver_packages(r),
    "fabric_manager": lambda r, a: nvidia_health.parse_fabric_manager(r),
    "amd_smi_static": lambda r, a: amd.parse_amd_smi_static(r.stdout),
    "amd_smi_static_driver": lambda r, a: amd.static_driver_version(r.stdout),
    "amd_smi_static_json": lambda r, a: amd.parse_amd_smi_static_json(r.stdout),
    "amd_smi_list": lambda r, a: amd.parse_amd_smi_list(r.stdout),
    "amd_smi_version": lambda r, a: amd.parse_amd_smi_version(r.stdout),
    "rocminfo": lambda r, a: amd.parse_rocminfo(r.stdout),
    "rocm_smi": lambda r, a: amd.parse_rocm_smi(r.stdout),
    "os": lambda r, a: system.parse_os(r),
    "python": lambda r, a: system.parse_python(r),
    "systemd": lambda r, a: system.parse_systemd(r),
    "memlock": lambda r, a: system.parse_memlock(r),
    "shm": lambda r, a: system.parse_shm(r),
    "docker": lambda r, a: docker.parse_docker_info(r),
    "disk_free": lambda r, a: parse_disk_free(a["path"], r),
    "ss": lambda r, a: network.parse_ss_listen(r.stdout),
    "ip_addr": lambda r, a: network.parse_ip_addr(r.stdout),
    "route_get": lambda r, a: network.parse_route_get(a["destination"], r),
    "path_state": lambda r, a: parse_path_state(a["path"], r),
    "unit_state": lambda r, a: parse_unit_state(a["unit"], r),
}


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def mismatches(expected: Any, actual: Any, path: str = "$") -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {actual!r}"]
        out = []
        for k, v in expected.items():
            if k not in actual:
                out.append(f"{path}.{k}: missing")
            else:
                out += mismatches(v, actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += mismatches(e, a, f"{path}[{i}]")
        return out
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


def read_case_text(folder: Path, case: Mapping[str, Any], key: str) -> str:
    if f"{key}_file" in case:
        return (folder / case[f"{key}_file"]).read_text()
    return str(case.get(key, ""))


def result_for(folder: Path, case: Mapping[str, Any]) -> CommandResult:
    return CommandResult(
        command=case.get("command", "test"),
        exit_code=int(case.get("exit_code", 0)),
        stdout=case.get("stdout_prefix", "") + read_case_text(folder, case, "stdout"),
        stderr=read_case_text(folder, case, "stderr"),
    )
