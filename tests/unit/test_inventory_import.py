"""`inventory import --from-ansible`: ansible-core's own parser reads the file; the result is a
valid glm5cluster inventory with the hosts, users, ports, keys and groups of the Ansible one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from glm5cluster.cli.inventory_cmd import AnsibleHost, command, convert
from glm5cluster.errors import InputError
from glm5cluster.model.inventory import Inventory

pytest.importorskip("ansible")
INI = Path(__file__).resolve().parent / "data" / "ansible-hosts.ini"


def test_import_an_ini_group_with_group_vars(tmp_path: Path) -> None:
    out = tmp_path / "cluster.yaml"
    res = CliRunner().invoke(command, ["import", "--from-ansible", str(INI), "--group", "gpu",
                                       "--gpu", "B200", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    inv = Inventory.model_validate(data)
    assert inv.cluster.name == "gpu"
    assert [(h.name, h.address) for h in inv.hosts] == [("gpu01-example-net", "198.51.100.20"),
                                                        ("gpu-02", "198.51.100.21")]
    assert inv.hosts[0].ssh.user == "ops" and inv.hosts[1].ssh.port == 2222
    assert all(h.ssh.identity_file and h.ssh.identity_file.endswith("gpu_ed25519") for h in inv.hosts)
    assert data["groups"] == {"gpu": ["gpu01-example-net", "gpu-02"]}
    assert data["cluster"]["gpu"] == {"kind": "B200", "count": 8}
    again = CliRunner().invoke(command, ["import", "--from-ansible", str(INI), "-o", str(out)])
    assert again.exit_code != 0 and isinstance(again.exception, InputError)  # never overwrites


def test_whole_file_to_stdout_and_unknown_group() -> None:
    res = CliRunner().invoke(command, ["import", "--from-ansible", str(INI)])
    assert res.exit_code == 0
    data = yaml.safe_load(res.stdout)
    assert len(data["hosts"]) == 3 and set(data["groups"]) == {"gpu", "storage"}
    bad = CliRunner().invoke(command, ["import", "--from-ansible", str(INI), "--group", "nope"])
    assert isinstance(bad.exception, InputError) and "nope" in bad.exception.message


def test_names_that_collide_are_refused() -> None:
    with pytest.raises(InputError):
        convert([AnsibleHost("GPU.1", {}), AnsibleHost("gpu-1", {})], cluster="c", gpu="H200",
                gpus=8, repo="zai-org/GLM-5", weights_dir="/m")
