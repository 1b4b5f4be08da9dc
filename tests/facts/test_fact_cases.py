"""Every fact parser against its captured outputs: tests/facts/<fact>/cases.json (see factcases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from factcases import HERE, PARSERS, mismatches, result_for, to_jsonable

FOLDERS = ["nvidia_gpus", "nvidia_health", "nvidia_driver/proc_version", "nvidia_driver/packages",
           "nvidia_driver/fabric_manager", "amd", "os", "docker", "system", "disk", "network", "units"]


def _cases() -> list[Any]:
    out = []
    for folder in FOLDERS:
        data = json.loads((HERE / folder / "cases.json").read_text())
        for case in data["cases"]:
            out.append(pytest.param(HERE / folder, data["parser"], case, id=f"{folder}: {case['name']}"))
    return out


@pytest.mark.parametrize(("folder", "parser", "case"), _cases())
def test_parser_case(folder: Path, parser: str, case: dict[str, Any]) -> None:
    value = PARSERS[case.get("parser", parser)](result_for(folder, case), case.get("args", {}))
    problems = mismatches(case["expected"], to_jsonable(value))
    assert not problems, "\n".join(problems)


def test_every_fixture_file_is_used_and_sourced() -> None:
    for folder in FOLDERS:
        path = HERE / folder
        cases = json.loads((path / "cases.json").read_text())["cases"]
        used = {c.get(k) for c in cases for k in ("stdout_file", "stderr_file")} - {None}
        files = {p.name for p in path.iterdir() if p.is_file() and p.name not in ("cases.json", "SOURCES.md")}
        assert files <= used, f"{folder}: unused fixture files {files - used}"
        if used:
            sources = (path / "SOURCES.md").read_text()
            missing = [f for f in used if f not in sources]
            assert not missing, f"{folder}/SOURCES.md does not name {missing}"


def test_every_nvidia_smi_table_fixture_parses() -> None:
    """The table fallback, on every captured nvidia-smi table: GPU count, kind, memory, driver."""
    expected = {
        "b200x8_nvidia-smi_575.57.08.txt": (8, "B200", 183359, "575.57.08"),
        "h100x8_nvidia-smi_550.90.07.txt": (8, "H100", 81559, "550.90.07"),
        "h100x8_nvidia-smi_565.57.01.txt": (8, "H100", 81559, "565.57.01"),
        "h100x8_nvidia-smi_590.48.01_under-load.txt": (8, "H100", 81559, "590.48.01"),
        "h200x1_nvidia-smi_550.90.12.txt": (1, "H200", 143771, "550.90.12"),
        "h200x2_smi-basic.txt": (2, "H200", 143771, "580.159.04"),
        "h200x8_nvidia-smi_570.158.01.txt": (8, "H200", 143771, "570.158.01"),
    }
    for name, (count, kind, mib, driver) in expected.items():
        state = PARSERS["nvidia_table"](result_for(HERE / "nvidia_gpus", {"stdout_file": name}), {})
        assert state.ok and state.count == count, name
        assert {g.kind.value for g in state.gpus} == {kind}, name
        assert {g.memory_mib for g in state.gpus} == {mib}, name
        assert state.driver_version == driver, name
        assert [g.index for g in state.gpus] == list(range(count)), name
