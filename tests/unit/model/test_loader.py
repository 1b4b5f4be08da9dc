"""The loader's public API: LoadedInventory, line_of, path resolution, file-level problems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glm5cluster.cli.inventory_io import load_and_check, plan_problem
from glm5cluster.errors import InputProblems, PlanError
from glm5cluster.model.loader import load_inventory
from glm5cluster.model.yaml_source import format_path, parent_path

GOOD = """\
version: 1
cluster:
  name: demo
  gpu: {kind: H200, count: 8}
ssh:
  identity_file: keys/id_ed25519
  known_hosts: ~/kh
hosts:
  - name: a
    address: 192.0.2.1
  - name: b
    address: 192.0.2.2
    cluster_address: 2001:db8::2
    ssh: {port: 2202, identity_file: /abs/key}
model:
  repo: zai-org/GLM-5
  weights_dir: /data/glm5
"""


def write(tmp_path: Path, text: str, name: str = "inv.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InputProblems) as info:
        load_inventory(path)
    return [str(p) for p in info.value.problems]


def test_loaded_inventory_fields(tmp_path: Path) -> None:
    loaded = load_inventory(write(tmp_path, GOOD))
    assert loaded.path == str(tmp_path / "inv.yaml")
    assert loaded.base_dir == str(tmp_path)
    assert [n.name for n in loaded.nodes] == ["a", "b"]
    a, b = loaded.nodes
    assert a.ssh.identity_file == os.path.join(str(tmp_path), "keys/id_ed25519")
    assert a.ssh.known_hosts == os.path.expanduser("~/kh")
    assert (b.ssh.port, b.ssh.identity_file, b.cluster_address) == (2202, "/abs/key", "2001:db8::2")
    assert a.cluster_address == "192.0.2.1"
    assert loaded.warnings == []


def test_relative_paths_resolve_against_the_inventory_folder_not_cwd(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "site"
    sub.mkdir()
    write(sub, GOOD)
    monkeypatch.chdir(tmp_path)
    loaded = load_inventory("site/inv.yaml")
    assert loaded.path == "site/inv.yaml"
    assert loaded.nodes[0].ssh.identity_file == str(sub / "keys/id_ed25519")


def test_line_of_paths_and_ancestors(tmp_path: Path) -> None:
    loaded = load_inventory(write(tmp_path, GOOD))
    assert loaded.line_of("") == 1
    assert loaded.line_of("hosts") == 8
    assert loaded.line_of("hosts[1]") == 11
    assert loaded.line_of("hosts[1].cluster_address") == 13
    assert loaded.line_of("hosts[1].ssh.port") == 14
    assert loaded.line_of("model.weights_dir") == 17
    assert loaded.line_of("hosts[1].gpu.count") == 11  # not written: the nearest ancestor
    assert loaded.line_of("serving.features.dp_attention") == 1
    p = loaded.problem("hosts[1].cluster_address", "bad\nthing", "fix it")
    assert str(p) == f"{loaded.path}:13: hosts[1].cluster_address: bad\\nthing (fix it)"


def test_plan_errors_point_at_their_line(tmp_path: Path) -> None:
    loaded = load_inventory(write(tmp_path, GOOD))
    p = plan_problem(loaded, PlanError("too few", "add hosts", path="hosts[1].ssh"))
    assert (p.line, p.path, p.message, p.hint) == (14, "hosts[1].ssh", "too few", "add hosts")


def test_load_and_check_returns_topology_and_warnings(tmp_path: Path) -> None:
    checked = load_and_check(write(tmp_path, GOOD))
    assert [r.nnodes for r in checked.topology.replicas] == [2]
    assert checked.topology.replicas[0].dist_init_addr == "192.0.2.1:20000"
    # no interface on a 2-node replica: the topology warns, with the host's line
    assert checked.warnings and all(w.line for w in checked.warnings)


def test_format_and_parent_path() -> None:
    assert format_path(("hosts", 2, "cluster_address")) == "hosts[2].cluster_address"
    assert format_path(("serving", "env", "A B")) == 'serving.env["A B"]'
    assert parent_path("hosts[2].gpu.kind") == "hosts[2].gpu"
    assert parent_path("hosts[2]") == "hosts"
    assert parent_path('serving.env["A.B"]') == "serving.env"
    assert parent_path("cluster") == ""
    assert parent_path("") is None


def test_missing_file_folder_and_binary(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such file (check the path to the inventory)"]
    assert "is a folder" in problems_of(tmp_path)[0]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    assert "not UTF-8" in problems_of(binary)[0]


def test_anchors_and_merge_keys_work_and_keep_lines(tmp_path: Path) -> None:
    text = GOOD.replace("hosts:\n", "x-gpu: &gpu {kind: H200, count: 8}\nhosts:\n")
    assert "unknown key `x-gpu`" in problems_of(write(tmp_path, text))[0]
    text = GOOD.replace("  - name: a\n    address: 192.0.2.1\n",
                        "  - &base\n    name: a\n    address: 192.0.2.1\n    interface: eth0\n"
                        "  - <<: *base\n    name: c\n    address: 192.0.2.3\n")
    loaded = load_inventory(write(tmp_path, text))
    assert [(n.name, n.interface) for n in loaded.nodes][:2] == [("a", "eth0"), ("c", "eth0")]
    assert loaded.line_of("hosts[1].name") == 14


def test_override_by_merge_is_not_a_duplicate_but_a_repeat_is(tmp_path: Path) -> None:
    text = GOOD.replace("  name: demo\n", "  name: demo\n  name: demo2\n")
    out = problems_of(write(tmp_path, text))
    assert any(":4: cluster.name: duplicate key `name` (first written on line 3)" in p for p in out)


def test_every_problem_is_reported_at_once_and_sorted_by_line(tmp_path: Path) -> None:
    text = GOOD.replace("name: demo", "name: Demo!").replace("count: 8", "count: 99").replace(
        "weights_dir: /data/glm5", "weights_dir: data")
    with pytest.raises(InputProblems) as info:
        load_inventory(write(tmp_path, text))
    lines = [p.line for p in info.value.problems]
    assert lines == sorted(lines) and len(lines) == 3
    assert all("\n" not in str(p) for p in info.value.problems)
