"""The lab mirror: real apt/dpkg, pip, docker pull and huggingface_hub against the
mirror host, from lab hosts that have no other package source (an air-gapped site)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.lab

NAME = "mirror"
SUBNET = "172.28.84.0/24"
OLD, NEW = "580.95.05-1", "580.105.08-1"
DRIVER_PKGS = ("nvidia-open-580", "nvidia-driver-580-open", "nvidia-dkms-580-open", "libnvidia-compute-580",
               "nvidia-utils-580", "nvidia-compute-utils-580", "nvidia-persistenced")
TOOLKIT_PKGS = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                "libnvidia-container1")
APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -q"


@dataclass
class Site:
    lab: object
    mirror: object
    build_s: float

    def sh(self, host: str, cmd: str, ok: bool = True) -> str:
        rc, out = self.lab.exec(host, ["bash", "-c", cmd])  # type: ignore[attr-defined]
        if ok:
            assert rc == 0, f"{host}: `{cmd}` exited {rc}:\n{out[-3000:]}"
        return out

    def reboot(self, host: str) -> None:
        self.lab.container(host).restart(timeout=10)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rc, out = self.lab.exec(host, "systemctl is-system-running --wait")  # type: ignore[attr-defined]
            if out.strip() in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise AssertionError(f"{host} did not come back")


@pytest.fixture(scope="module")
def site(make_lab, docker_client) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    from glm5cluster.lab.addresses import mirror_address
    from glm5cluster.lab.manager import network_name
    from glm5cluster.lab.mirror import ensure_mirror

    lab = make_lab(NAME, hosts=2, subnet=SUBNET, overrides=["node-1:driver=none", "node-2:gpu=MI300X,driver=none"])
    t0 = time.monotonic()
    mirror = ensure_mirror(docker_client, NAME, network_name(NAME), mirror_address(SUBNET), lab.dir)
    yield Site(lab, mirror, time.monotonic() - t0)


def _pins(pkgs: tuple[str, ...], version: str) -> str:
    return " ".join(f"{p}={version}" for p in pkgs)


def test_driver_from_the_cuda_mirror_needs_a_reboot_then_loads(site: Site) -> None:
    m = site.mirror
    site.sh("node-1", f"cd /tmp && curl -fsSLO {m.cuda_repo('debian12')}cuda-keyring_1.1-1_all.deb"  # type: ignore[attr-defined]
                      " && dpkg -i cuda-keyring_1.1-1_all.deb")
    site.sh("node-1", f"echo '{m.cuda_source('debian12')}' > /etc/apt/sources.list.d/cuda-debian12-x86_64.list"  # type: ignore[attr-defined]
                      " && apt-get update -q")
    out = site.sh("node-1", f"{APT} install {_pins(DRIVER_PKGS, OLD)}")
    assert "reboot to load it" in out
    out = site.sh("node-1", "nvidia-smi", ok=False)
    assert "couldn't communicate with the NVIDIA driver" in out
    site.sh("node-1", "test -f /run/reboot-required")
    site.reboot("node-1")
    out = site.sh("node-1", "nvidia-smi --query-gpu=driver_version --format=csv,noheader | sort -u")
    assert out.strip() == "580.95.05"
    site.sh("node-1", "test ! -f /run/reboot-required && systemctl is-active nvidia-persistenced")
    # an upgrade without a reboot: the real "Driver/library version mismatch"
    site.sh("node-1", f"{APT} install {_pins(DRIVER_PKGS, NEW)} nvidia-fabricmanager-580={NEW}")
    out = site.sh("node-1", "nvidia-smi", ok=False)
    assert "Driver/library version mismatch" in out
    out = site.sh("node-1", "systemctl start nvidia-fabricmanager; journalctl -u nvidia-fabricmanager", ok=False)
    assert "don't match with driver version 580.95.05" in out
    site.reboot("node-1")
    site.sh("node-1", "nvidia-smi >/dev/null && systemctl start nvidia-fabricmanager && nv-fabricmanager -v")


def test_container_toolkit_makes_docker_gpus_all_work(site: Site) -> None:
    m = site.mirror
    site.sh("node-1", f"curl -fsSL -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg {m.keyring_url}"  # type: ignore[attr-defined]
                      f" && echo '{m.toolkit_source()}' > /etc/apt/sources.list.d/nvidia-container-toolkit.list"  # type: ignore[attr-defined]
                      " && apt-get update -q")
    site.sh("node-1", f"{APT} install {_pins(TOOLKIT_PKGS, '1.17.8-1')}")
    site.sh("node-1", "nvidia-ctk runtime configure --runtime=docker && systemctl restart docker")
    out = site.sh("node-1", "docker info --format '{{json .Runtimes}}'")
    assert '"nvidia"' in out
    image = m.images["lmsysorg/sglang:v0.5.23"]  # type: ignore[attr-defined]
    site.sh("node-1", f"docker pull -q {image}")
    out = site.sh("node-1", f"docker run --rm --gpus all {image} nvidia-smi")
    assert "NVIDIA H200" in out and "Driver Version: 580.105.08" in out
    out = site.sh("node-1", f"docker run --rm --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=0,1 {image} nvidia-smi -L")
    assert len(out.strip().splitlines()) == 2
    out = site.sh("node-1", f"docker run --rm {image} sh -c 'command -v nvidia-smi || echo no-gpu'")
    assert "no-gpu" in out


def test_registry_serves_the_sglang_images(site: Site) -> None:
    for ref in site.mirror.images.values():  # type: ignore[attr-defined]
        site.sh("node-2", f"docker pull -q {ref}")
    out = site.sh("node-2", f"docker run --rm {site.mirror.images['lmsysorg/sglang:v0.5.23']} "  # type: ignore[attr-defined]
                            "python3 -c 'import sglang, sys; print(sglang.__file__)'")
    assert "dist-packages/sglang" in out


def test_pip_installs_sglang_and_huggingface_hub_from_the_index(site: Site) -> None:
    m = site.mirror
    site.sh("node-2", f"python3 -m venv /opt/sg && /opt/sg/bin/pip install -q --index-url {m.pypi_url}"  # type: ignore[attr-defined]
                      f" --trusted-host {m.address} sglang==0.5.23 huggingface_hub")  # type: ignore[attr-defined]
    out = site.sh("node-2", "/opt/sg/bin/python -c 'import importlib.metadata as m; print(m.version(\"sglang\"))'")
    assert out.strip() == "0.5.23"


def test_hub_snapshot_download(site: Site) -> None:
    code = ("from huggingface_hub import snapshot_download as s; import os; "
            "p = s('zai-org/GLM-5', local_dir='/srv/glm5'); print(sorted(os.listdir(p)))")
    out = site.sh("node-2", f"HF_ENDPOINT={site.mirror.hub_url} HF_HUB_DISABLE_PROGRESS_BARS=1 "  # type: ignore[attr-defined]
                            f"/opt/sg/bin/python -c \"{code}\"")
    assert "model-00008-of-00008.safetensors" in out and "model.safetensors.index.json" in out


def test_amd_stack_from_the_rocm_mirror(site: Site) -> None:
    m = site.mirror
    site.sh("node-2", f"cd /tmp && curl -fsSLO {m.apt_url}/amdgpu-install/7.2/ubuntu/jammy/amdgpu-install_7.2.70200-1_all.deb"  # type: ignore[attr-defined]
                      " && dpkg -i amdgpu-install_7.2.70200-1_all.deb && rm /etc/apt/sources.list.d/amdgpu.list"
                      f" && printf '%s\\n' {' '.join(repr(x) for x in m.rocm_sources())} > /etc/apt/sources.list.d/rocm.list"  # type: ignore[attr-defined]
                      " && apt-get update -q")
    out = site.sh("node-2", f"{APT} install amdgpu-dkms rocm amd-container-toolkit")
    assert "reboot to load it" in out
    site.reboot("node-2")
    out = site.sh("node-2", "amd-smi version")
    assert "amdgpu version: 6.16.6" in out
    site.sh("node-2", "amd-ctk runtime configure --runtime=docker && grep -q amd-container-runtime /etc/docker/daemon.json")


def test_second_ensure_is_fast_and_keeps_the_container(site: Site, docker_client) -> None:  # type: ignore[no-untyped-def]
    from glm5cluster.lab.addresses import mirror_address
    from glm5cluster.lab.manager import network_name
    from glm5cluster.lab.mirror import ensure_mirror

    before = docker_client.containers.get(site.mirror.container).id  # type: ignore[attr-defined]
    t0 = time.monotonic()
    ensure_mirror(docker_client, NAME, network_name(NAME), mirror_address(SUBNET), site.lab.dir)  # type: ignore[attr-defined]
    assert time.monotonic() - t0 < 10
    assert docker_client.containers.get(site.mirror.container).id == before  # type: ignore[attr-defined]
