"""Pure parts of the lab: addresses, overrides, the Debian mirror, the inventory it writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from glm5cluster.errors import GlmError, InputError
from glm5cluster.lab import addresses
from glm5cluster.lab.files import LabSettings, inventory_data
from glm5cluster.lab.image import base_hash, debian_mirror, host_hash
from glm5cluster.lab.manager import parse_overrides, plans
from glm5cluster.model.inventory import Inventory

REPO = Path(__file__).resolve().parents[3]


def test_addresses() -> None:
    assert addresses.host_address("172.28.77.0/24", 1) == "172.28.77.11"
    assert addresses.host_address("10.1.2.0/24", 3) == "10.1.2.13"
    assert addresses.mirror_address("172.28.77.0/24") == "172.28.77.2"
    m = addresses.mirror_endpoints()
    assert m.registry.startswith("172.28.77.2:") and m.hub.startswith("http://172.28.77.2:")
    with pytest.raises(ValueError):
        addresses.host_address("172.28.77.0/24", 250)


def test_overrides() -> None:
    ov = parse_overrides(["node-2:gpus=4", "node-1:driver=none,gpu=MI300X"], 2)
    assert ov == {"node-2": {"gpus": "4"}, "node-1": {"driver": "none", "gpu": "MI300X"}}
    for bad in ("node-3:gpus=1", "node-1:gpus=0", "node-1:color=red", "node-1"):
        with pytest.raises(InputError):
            parse_overrides([bad], 2)


def test_plans_apply_overrides_and_sudo_hosts() -> None:
    s = LabSettings("t", 3, "H200", 8, "172.28.90.0/24", sudo_user_hosts=1,
                    overrides={"node-2": {"driver": "none"}, "node-1": {"gpus": "4"}})
    p = plans(s)
    assert [x.address for x in p] == ["172.28.90.11", "172.28.90.12", "172.28.90.13"]
    assert p[0].gpu_count == 4 and p[1].driver is None and p[2].driver
    assert [x.sudo_user for x in p] == [False, False, True]
    assert p[0].container_name == "glm5lab-t-node-1"


def test_lab_inventory_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLM5CLUSTER_LAB_HOME", str(tmp_path))
    s = LabSettings("t", 2, "H200", 8, "172.28.90.0/24", sudo_user_hosts=1)
    data = inventory_data(s, [(x.hostname, x.address, x.gpu_kind, x.gpu_count, x.sudo_user) for x in plans(s)])
    inv = Inventory.model_validate(data)
    assert inv.hosts[1].ssh.user == "glm5"
    assert inv.model.repo == "zai-org/GLM-5"


def test_checked_in_lab_inventory_validates() -> None:
    inv = Inventory.model_validate(yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text()))
    assert [h.address for h in inv.hosts] == ["172.28.77.11", "172.28.77.12"]
    assert inv.ssh.known_hosts == "~/.glm5cluster/lab/default/known_hosts"


def test_debian_mirror_from_deb822_and_one_line(tmp_path: Path) -> None:
    a = tmp_path / "debian.sources"
    a.write_text("Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
                 "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
                 "Components: main\n")
    assert debian_mirror([a]) == "http://mirror.example/debian"
    b = tmp_path / "sources.list"
    b.write_text("deb [signed-by=/x.gpg] http://other.example/debian bookworm main\n")
    assert debian_mirror([b]) == "http://other.example/debian"
    with pytest.raises(GlmError):
        debian_mirror([tmp_path / "missing"])


def test_image_hashes_are_stable() -> None:
    assert base_hash() == base_hash() and len(host_hash()) == 12
