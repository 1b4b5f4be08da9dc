"""Every example inventory: per-node sglang_args equal the hand-written goldens (cookbook flag
for flag), pass the 0.5.23 option table, and use the old spellings for a launch-era version."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.sglang import build_args, load_table, table_for, validate_argv

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
NAMES = sorted(p.stem for p in GOLDEN.glob("*.json"))


def flag_groups(argv: list[str]) -> list[tuple[str, tuple[object, ...]]]:
    """(flag, values) pairs, order-insensitive; numbers compared as numbers."""
    groups: list[tuple[str, list[object]]] = []
    for a in argv:
        if a.startswith("--"):
            groups.append((a, []))
        else:
            try:
                v: object = float(a)
            except ValueError:
                v = json.loads(a) if a.startswith("{") else a
            groups[-1][1].append(json.dumps(v, sort_keys=True))
    return sorted((f, tuple(v)) for f, v in groups)


def node_args(name: str, version: str | None = None) -> dict[str, list[str]]:
    checked = load_and_check(ROOT / "inventory" / f"{name}.yaml")
    inv, topo = checked.loaded.inventory, checked.topology
    if version:
        data = inv.model_dump(mode="json")
        data["serving"]["sglang_version"] = version
        inv = type(inv).model_validate(data)
    return {r.node.name: build_args(inv, topo, rep, r) for rep in topo.replicas for r in rep.ranks}


def test_every_example_inventory_has_a_golden():
    assert NAMES == sorted(p.stem for p in (ROOT / "inventory").glob("*.yaml"))


@pytest.mark.parametrize("name", NAMES)
def test_golden(name):
    golden = {h: shlex.split(line) for h, line in json.loads((GOLDEN / f"{name}.json").read_text()).items()}
    got = node_args(name)
    assert list(got) == list(golden), "hosts (head first)"
    for host, argv in got.items():
        assert flag_groups(argv) == flag_groups(golden[host]), host
        assert validate_argv(argv, load_table("0.5.23")) == [], host


RENAMED = {"--dsa-prefill-backend": "--nsa-prefill-backend", "--dsa-decode-backend": "--nsa-decode-backend",
           "--attn-dp-size": "--dp-size", "--flashinfer-allreduce-fusion-backend": "--enable-flashinfer-allreduce-fusion"}


@pytest.mark.parametrize("name", NAMES)
def test_launch_era_rendering_uses_old_spellings(name):
    new, old = node_args(name), node_args(name, "0.5.10")
    for host in new:
        assert validate_argv(old[host], table_for("0.5.10")) == [], host
        for modern, legacy in RENAMED.items():
            assert modern not in old[host]
            assert (modern in new[host]) == (legacy in old[host]), (host, modern)
        if "--attn-dp-size" in new[host]:
            assert "--enable-dp-attention" in old[host]
        if "--attention-backend" in new[host]:
            assert old[host][old[host].index("--attention-backend") + 1] == "nsa"
