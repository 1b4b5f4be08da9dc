"""Shared unit-test helpers: a small valid inventory and its topology."""

from __future__ import annotations

from typing import Any

import pytest

from glm5cluster.model.inventory import Inventory
from glm5cluster.model.nodes import resolve_nodes
from glm5cluster.topology import Topology, plan_topology


def make_inventory(kind: str = "H200", repo: str = "zai-org/GLM-5-FP8", hosts: int = 1, count: int = 8,
                   **sections: Any) -> Inventory:
    data: dict[str, Any] = {
        "cluster": {"name": "t", "gpu": {"kind": kind, "count": count}, "interface": "eth1"},
        "hosts": [{"name": f"n{i}", "address": f"10.0.0.{i + 1}", "cluster_address": f"192.168.0.{i + 1}"}
                  for i in range(hosts)],
        "model": {"repo": repo, "weights_dir": "/models/glm5"},
    }
    for key, value in sections.items():
        data[key] = value
    return Inventory.model_validate(data)


def plan(inv: Inventory) -> Topology:
    return plan_topology(inv, resolve_nodes(inv))


@pytest.fixture
def inv_factory():
    return make_inventory


@pytest.fixture
def planner():
    return plan


EXAMPLE_KEYS = (".ssh/id_ed25519", ".glm5cluster/lab/default/id_ed25519",
                # the lab inventories' bench data files (`lab up` writes them)
                ".glm5cluster/lab/default/bench/gsm8k.jsonl", ".glm5cluster/lab/default/bench/sharegpt.json",
                ".glm5cluster/lab/default/bench/mmlu.jsonl")


@pytest.fixture
def example_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A HOME where the key files the example inventories name exist (validate checks them)."""
    home = tmp_path_factory.mktemp("home")
    for rel in EXAMPLE_KEYS:
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text("placeholder key\n")
    monkeypatch.setenv("HOME", str(home))
    return home
