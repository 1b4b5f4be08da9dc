"""``inventory/lab.yaml`` (the README's main-job inventory) is exactly what ``glm5cluster lab up``
writes for the default lab (``lab/files.py`` ``inventory_data``), comments aside."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from glm5cluster.lab.addresses import DEFAULT_SUBNET, host_address
from glm5cluster.lab.files import LabSettings, inventory_data

LAB_YAML = Path(__file__).resolve().parents[3] / "inventory" / "lab.yaml"


def test_checked_in_lab_inventory_is_the_default_labs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLM5CLUSTER_LAB_HOME", raising=False)  # the default lab home, ~/.glm5cluster/lab
    s = LabSettings(name="default", hosts=2, gpu="H200", gpus_per_node=8, subnet=DEFAULT_SUBNET,
                    bench_clients=True)  # `lab up` sets it (--bench-clients)
    hosts = [(f"node-{i}", host_address(DEFAULT_SUBNET, i), "H200", 8, False) for i in (1, 2)]
    want = inventory_data(s, hosts)
    got = yaml.safe_load(LAB_YAML.read_text())
    assert got == want, "inventory/lab.yaml differs from `glm5cluster lab up`'s default inventory:\n" + \
        yaml.safe_dump(want, sort_keys=False)


def test_checked_in_lab_router_inventory_is_the_4_host_labs_plus_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLM5CLUSTER_LAB_HOME", raising=False)
    s = LabSettings(name="default", hosts=4, gpu="H200", gpus_per_node=8, subnet=DEFAULT_SUBNET,
                    bench_clients=True)  # `lab up` sets it (--bench-clients)
    hosts = [(f"node-{i}", host_address(DEFAULT_SUBNET, i), "H200", 8, False) for i in (1, 2, 3, 4)]
    want = inventory_data(s, hosts)
    want["cluster"]["name"] = "lab-router"
    want["replicas"] = {"router": {"host": "node-4", "port": 8000, "health_check_interval": 2}}
    got = yaml.safe_load((LAB_YAML.parent / "lab-router.yaml").read_text())
    assert got == want
