"""The rehearsal lab itself: hosts boot, SSH is strict, GPUs answer, docker works, reboots
clear /run, and `lab down` removes exactly what the lab made."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from glm5cluster.model.inventory import Inventory

pytestmark = pytest.mark.lab

NAME = "labtest"
SUBNET = "172.28.78.0/24"


@pytest.fixture(scope="module")
def lab(make_lab):  # type: ignore[no-untyped-def]
    return make_lab(NAME, hosts=2, subnet=SUBNET, sudo_user_hosts=1,
                    overrides=["node-2:gpus=4"])


def ssh(lab, host: str, cmd: str, user: str = "root", timeout: float = 30) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(lab.ssh_argv(host, cmd, user), capture_output=True, text=True, timeout=timeout)


def test_up_writes_a_valid_inventory_and_private_key(lab) -> None:  # type: ignore[no-untyped-def]
    inv = Inventory.model_validate(yaml.safe_load(lab.inventory.read_text()))
    assert [h.address for h in inv.hosts] == ["172.28.78.11", "172.28.78.12"]
    assert inv.hosts[1].gpu is not None and inv.hosts[1].gpu.count == 4
    assert inv.hosts[1].ssh.user == "glm5"
    assert lab.key.stat().st_mode & 0o077 == 0
    assert len(lab.known_hosts.read_text().splitlines()) >= 4  # several key types per host


def test_ssh_with_strict_host_key_checking(lab) -> None:  # type: ignore[no-untyped-def]
    r = ssh(lab, "node-1", "hostname; systemctl is-system-running; getent hosts node-2")
    assert r.returncode == 0, r.stderr
    name, state, hosts_line = r.stdout.splitlines()[:3]
    assert name == "node-1" and state in ("running", "degraded")
    assert hosts_line.split()[0] == "172.28.78.12"
    r = ssh(lab, "node-2", "sudo -n id -u", user="glm5")
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr
    assert ssh(lab, "node-1", "true", user="glm5").returncode == 255  # not authorised there


def test_an_unknown_host_key_is_refused(lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    argv = [a if not a.startswith("UserKnownHostsFile=") else f"UserKnownHostsFile={empty}"
            for a in lab.ssh_argv("node-1", "true")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 255 and "Host key verification failed" in r.stderr


def test_gpus_answer_scaled_to_each_host(lab) -> None:  # type: ignore[no-untyped-def]
    r = ssh(lab, "node-1", "nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader")
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 8 and lines[0] == "0, NVIDIA H200, 143771 MiB"
    rc, out = lab.exec("node-2", "nvidia-smi -L")
    assert rc == 0 and len(out.splitlines()) == 4


def test_docker_inside_a_host(lab) -> None:  # type: ignore[no-untyped-def]
    r = ssh(lab, "node-1", "docker info --format '{{.Driver}} {{.ServerVersion}}'")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] in ("overlay2", "vfs")


def _wait_ssh(lab, host: str, since: float, deadline_s: float = 90) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        r = ssh(lab, host, "cat /run/glm5lab/booted; systemctl is-system-running", timeout=15)
        lines = r.stdout.split()
        if r.returncode == 0 and len(lines) >= 2 and float(lines[0]) > since and lines[1] in ("running", "degraded"):
            return r.stdout
        time.sleep(1)
    raise AssertionError(f"{host} did not come back within {deadline_s}s")


def test_reboot_comes_back_with_a_fresh_run_and_the_new_driver_loaded(lab) -> None:  # type: ignore[no-untyped-def]
    before = float(ssh(lab, "node-1", "cat /run/glm5lab/booted").stdout)
    # a driver "upgrade" without a reboot: the loaded driver no longer matches
    r = ssh(lab, "node-1", "/opt/glm5lab/bin/glm5lab-set-driver 590.48.01 && touch /run/marker && nvidia-smi")
    assert r.returncode == 18 and "Driver/library version mismatch" in r.stdout
    subprocess.run(lab.ssh_argv("node-1", "systemctl reboot"), capture_output=True, timeout=30)
    _wait_ssh(lab, "node-1", before)
    r = ssh(lab, "node-1", "test ! -e /run/marker && nvidia-smi --query-gpu=driver_version --format=csv,noheader")
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(r.stdout.split()) == {"590.48.01"}  # same host keys too: strict SSH still passes


def test_lab_down_removes_only_what_the_lab_made(lab, docker_client) -> None:  # type: ignore[no-untyped-def]
    from glm5cluster.cli.main import main

    image = lab.container("node-1").image.id
    unrelated = docker_client.containers.create(image, name=f"unrelated-{NAME}", labels={"other": "x"})
    vol = docker_client.volumes.create(f"unrelated-{NAME}-vol", labels={"glm5cluster.lab": f"{NAME}-other"})
    try:
        assert main(["lab", "down", "--name", NAME]) == 0
        flt = {"label": f"glm5cluster.lab={NAME}"}
        assert docker_client.containers.list(all=True, filters=flt) == []
        assert docker_client.networks.list(filters=flt) == []
        assert docker_client.volumes.list(filters=flt) == []
        assert not lab.dir.exists()
        docker_client.containers.get(unrelated.id)  # still there
        docker_client.volumes.get(vol.name)
    finally:
        unrelated.remove(force=True)
        vol.remove(force=True)
