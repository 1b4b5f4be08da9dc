"""Every example inventory validates; the README documents every schema field; the schema prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.main import main
from glm5cluster.model.inventory import Inventory

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventory"
EXAMPLES = sorted(INVENTORY.glob("*.yaml"))
SEED_ROWS = {  # file -> (GPU kind, precision, tp, nodes per replica, replicas)
    "h100-fp8.yaml": ("H100", "fp8", 16, 2, 1),
    "h100-bf16.yaml": ("H100", "bf16", 32, 4, 1),
    "h200-fp8.yaml": ("H200", "fp8", 8, 1, 1),
    "h200-bf16.yaml": ("H200", "bf16", 16, 2, 1),
    "b200-fp8.yaml": ("B200", "fp8", 8, 1, 1),
    "b200-bf16.yaml": ("B200", "bf16", 16, 2, 1),
    "mi300x-bf16.yaml": ("MI300X", "bf16", 8, 1, 1),
    "mi325x-bf16.yaml": ("MI325X", "bf16", 8, 1, 1),
    "mi355x-bf16.yaml": ("MI355X", "bf16", 8, 1, 1),
    "two-replicas-router.yaml": ("H200", "fp8", 8, 1, 2),
}


def test_every_seed_row_has_an_example() -> None:
    names = {p.name for p in EXAMPLES}
    assert set(SEED_ROWS) <= names


@pytest.mark.parametrize("name", sorted(SEED_ROWS))
def test_example_matches_its_seed_row(name: str) -> None:
    kind, precision, tp, nnodes, replicas = SEED_ROWS[name]
    checked = load_and_check(INVENTORY / name)
    assert checked.warnings == []
    topo = checked.topology
    assert topo.precision.value == precision
    assert len(topo.replicas) == replicas
    for rep in topo.replicas:
        assert (rep.gpu_kind.value, rep.tp_size, rep.nnodes) == (kind, tp, nnodes)
    if name == "two-replicas-router.yaml":
        assert topo.router is not None and topo.router.node.name == "router"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_through_main(path: Path, capsys: pytest.CaptureFixture[str], example_home: Path) -> None:
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ")


def test_examples_use_documentation_addresses() -> None:
    import ipaddress

    doc_nets = [ipaddress.ip_network(n) for n in
                ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "10.0.0.0/8")]
    for name in SEED_ROWS:
        inv = load_and_check(INVENTORY / name).loaded.inventory
        for h in inv.hosts:
            for addr in filter(None, (h.address, h.cluster_address)):
                ip = ipaddress.ip_address(addr)
                assert any(ip in n for n in doc_nets), f"{name}: {addr} is not a documentation address"


def test_validate_many_files_real_cli(example_home: Path) -> None:
    # the installed console script next to this interpreter (any venv), else the module
    script = Path(sys.executable).parent / "glm5cluster"
    exe = [str(script)] if script.is_file() else [sys.executable, "-m", "glm5cluster"]
    files = [str(INVENTORY / n) for n in sorted(SEED_ROWS)]
    proc = subprocess.run([*exe, "validate", *files], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(example_home)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("ok: ") == len(files)
    assert "two-replicas-router.yaml: 3 hosts, 2 replicas, router on router" in proc.stdout


def _fields(model: type[BaseModel], prefix: str, seen: set[type]) -> list[tuple[str, FieldInfo]]:
    """(dotted path, field) for every schema field, each record class once (hosts[].ssh is ssh's)."""
    out = []
    for name, f in model.model_fields.items():
        path = prefix + name
        out.append((path, f))
        ann = f.annotation
        is_list = typing.get_origin(ann) is list
        stack, found = [ann], []
        while stack:
            t = stack.pop()
            origin = typing.get_origin(t)
            if origin is typing.Annotated:
                stack.append(typing.get_args(t)[0])
            elif origin in (typing.Union, types.UnionType, list):
                stack.extend(typing.get_args(t))
            elif isinstance(t, type) and issubclass(t, BaseModel) and t not in seen:
                seen.add(t)
                found.append(t)
        for m in found:
            out += _fields(m, path + ("[]" if is_list else "") + ".", seen)
    return out


def _field_paths() -> list[str]:
    return [p for p, _ in _fields(Inventory, "", {Inventory})]


def test_readme_documents_every_field() -> None:
    readme = (INVENTORY / "README.md").read_text()
    paths = _field_paths()
    assert len(paths) > 60
    missing = [p for p in paths if f"| `{p}` |" not in readme]
    assert not missing, f"inventory/README.md lacks rows for: {missing}"
    # and it documents nothing that is not in the schema
    documented = set(re.findall(r"^\| `([a-z_][a-z0-9_.\[\]]*)` \|", readme, re.M))
    documented = {d for d in documented if not d.endswith(".yaml")}
    assert documented <= set(paths), documented - set(paths)


def test_readme_rows_have_five_columns_and_true_defaults() -> None:
    readme = (INVENTORY / "README.md").read_text()
    paths = set(_field_paths())
    rows = [ln for ln in readme.splitlines() if ln.startswith("| `") and ln.split("`")[1] in paths]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 5 and cells[4], f"row needs field, type, default, meaning, example: {row}"
    schema_defaults = _defaults()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        path, default = cells[0].strip("`"), cells[2]
        if path in schema_defaults:
            assert default == schema_defaults[path], f"{path}: README says {default}"


def _defaults() -> dict[str, str]:
    """README spelling of each plain default (required fields and factories are not listed)."""
    out: dict[str, str] = {}
    for path, f in _fields(Inventory, "", {Inventory}):
        if f.is_required() or f.default_factory is not None:
            continue
        v = f.default
        if v is None:
            out[path] = "-"
        elif isinstance(v, bool):
            out[path] = f"`{str(v).lower()}`"
        else:
            out[path] = f"`{getattr(v, 'value', v)}`"
    return out


def test_schema_command_prints_described_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "glm5cluster inventory"
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"cluster", "hosts", "model"}
    undescribed = []
    for where, props in [("", schema["properties"])] + [
        (name, d.get("properties", {})) for name, d in schema["$defs"].items()
    ]:
        undescribed += [f"{where}.{k}" for k, v in props.items() if not v.get("description")]
    assert not undescribed


def test_schema_command_writes_file(tmp_path: Path) -> None:
    out = tmp_path / "inventory.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["title"] == "glm5cluster inventory"
