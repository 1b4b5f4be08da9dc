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


BASTION = Path(__file__).resolve().parent / "data" / "ansible-bastion.ini"


def test_jump_host_and_become_are_mapped(tmp_path: Path) -> None:
    res = CliRunner().invoke(command, ["import", "--from-ansible", str(BASTION), "--group", "gpu"])
    assert res.exit_code == 0, res.output
    inv = Inventory.model_validate(yaml.safe_load(res.stdout))
    a, b, c = inv.hosts
    assert (a.ssh.jump_host, a.ssh.user, a.ssh.sudo) == ("ops@bastion.example.net:2222", "deploy", True)
    assert b.ssh.jump_host == "jump@bastion.example.net:2200"  # the host's own ProxyCommand wins
    assert (c.ssh.user, c.ssh.sudo) == ("root", None)  # root needs no sudo
    assert "hunter2" not in res.stdout and "NOPASSWD" in res.stderr  # the password is never imported


@pytest.mark.parametrize(("args", "want"), [
    ("-J bastion", "bastion"),
    ("-Jops@b.example:2022", "ops@b.example:2022"),
    ("-o ProxyJump=ops@b", "ops@b"),
    ("-oProxyJump=b:2200", "b:2200"),
    ("-o 'ProxyJump b2'", "b2"),
    ("-o ProxyCommand='ssh -W %h:%p -l ops b3'", "ops@b3"),
    ("-o ProxyCommand='/usr/bin/ssh -q -W %h:%p -p 22 b4'", "b4"),
    ("-o ProxyJump=none -o ControlMaster=auto", None),
    ("-o ServerAliveInterval=30", None),
])
def test_jump_host_forms(args: str, want: str | None) -> None:
    from glm5cluster.cli.ansible_map import jump_host

    assert jump_host("h", {"ansible_ssh_common_args": args}) == want


@pytest.mark.parametrize(("hostvars", "hint"), [
    ({"ansible_ssh_common_args": "-J a,b"}, "one jump host"),
    ({"ansible_ssh_extra_args": "-o ProxyCommand='nc -X connect -x proxy:3128 %h %p'"}, "ssh.jump_host by hand"),
    ({"ansible_become": True, "ansible_become_method": "su"}, "sudo -n"),
    ({"ansible_become": "true", "ansible_become_user": "postgres"}, "needs root"),
])
def test_what_cannot_be_mapped_is_refused_with_a_hint(hostvars: dict[str, object], hint: str) -> None:
    with pytest.raises(InputError) as e:
        convert([AnsibleHost("h1", {"ansible_user": "ops", **hostvars})], cluster="c", gpu="H200", gpus=8,
                repo="zai-org/GLM-5", weights_dir="/m")
    assert "h1" in e.value.message and hint in (e.value.hint or "")
