"""GPU-stack tasks planned from canned probe output, for every OS family and both vendors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from glm5cluster.commands import Shell, Upload
from glm5cluster.facts.packages import parse_stack
from glm5cluster.model.inventory import GpuKind, Inventory
from glm5cluster.tasks.amd import AmdParams, AmdRocm, release_and_pkgver
from glm5cluster.tasks.base import Change, Fail, NoOp, Skip
from glm5cluster.tasks.container import ContainerParams, DockerEngine, NvidiaContainerToolkit
from glm5cluster.tasks.nvidia import FabricManager, NvidiaDriver, NvidiaPersistence, StackParams
from glm5cluster.tasks.reboot import GpuVerify, VerifyParams, driver_parity, reboot_reason

OS = {
    "ubuntu2204": ("ubuntu", "22.04", "", "jammy", "5.15.0-100-generic"),
    "ubuntu2404": ("ubuntu", "24.04", "debian", "noble", "6.8.0-40-generic"),
    "debian12": ("debian", "12", "", "bookworm", "6.1.0-18-amd64"),
    "rocky9": ("rocky", "9.4", "rhel centos fedora", "", "5.14.0-427.el9.x86_64"),
}


def probe(os_key: str, pkgs: dict[str, str] | None = None, smi: str | None = None, proc: str | None = None,
          services: str = "", reboot: bool = False, held: tuple[str, ...] = (), extra: str = "") -> str:
    i, v, like, code, kern = OS[os_key]
    out = [f"@@os 0\nid={i}\nversion={v}\nlike={like}\ncodename={code}\nkernel={kern}\narch=x86_64"]
    sec = "rpm" if os_key.startswith("rocky") else "dpkg"
    out.append(f"@@{sec} 0\n" + "\n".join(f"{n} {ver} ii " for n, ver in (pkgs or {}).items()))
    out.append("@@held 0\n" + "\n".join(held))
    out.append("@@apt_sources 0\ndeb http://deb.debian.org/debian bookworm main")
    out.append(f"@@proc_version {'0' if proc else '1'}\n" + (proc or ""))
    out.append(f"@@smi_gpus {'0' if smi else '127'}\n" + (smi or "sh: nvidia-smi: not found"))
    out.append(f"@@reboot_required {0 if reboot else 1}")
    out.append("@@services 0\n" + services)
    return "\n".join(out) + "\n" + extra


@dataclass
class Node:
    name: str = "n1"
    gpu_kind: GpuKind = GpuKind.H200
    gpu_count: int = 8
    labels: dict[str, str] = field(default_factory=dict)
    ssh: Any = None


@dataclass
class Ctx:
    node: Node
    inventory: Any


def inv(**stack: Any) -> Inventory:
    return Inventory.model_validate({
        "cluster": {"name": "c", "gpu": {"kind": "H200", "count": 8}},
        "hosts": [{"name": "n1", "address": "10.0.0.1"}],
        "model": {"repo": "zai-org/GLM-5-FP8", "weights_dir": "/models/glm5"},
        "serving": {"runtime": stack.pop("runtime", "docker")},
        "stack": stack,
    })


def plan(task: Any, params: Any, text: str, node: Node | None = None, inventory: Inventory | None = None) -> Any:
    return task.plan(params, Ctx(node or Node(), inventory or inv()), {"stack": parse_stack(text)})


def lines(outcome: Change) -> list[str]:
    return [c.command_line() if isinstance(c, Shell) else f"UPLOAD {c.dest}" for c in outcome.commands]


def test_bare_ubuntu_2204_gets_repo_headers_open_driver_and_hold() -> None:
    out = plan(NvidiaDriver(), StackParams(), probe("ubuntu2204"))
    assert isinstance(out, Change)
    text = "\n".join(lines(out))
    assert "repos/ubuntu2204/x86_64/cuda-keyring_1.1-1_all.deb" in text
    assert "linux-headers-5.15.0-100-generic" in text
    assert "nvidia-driver-580-open" in text
    assert "apt-mark hold nvidia-driver-580-open" in text


def test_branch_590_installs_pinning_package_first() -> None:
    out = plan(NvidiaDriver(), StackParams(driver_branch="595"), probe("ubuntu2404"))
    assert isinstance(out, Change)
    installs = [ln for ln in lines(out) if " install " in f" {ln} " and "apt-get install" in ln]
    assert "nvidia-driver-pinning-595" in installs[-2] and installs[-1].endswith("nvidia-open")


def test_debian12_enables_contrib_and_uses_debian12_repo() -> None:
    out = plan(NvidiaDriver(), StackParams(), probe("debian12"))
    text = "\n".join(lines(out))
    assert "contrib" in text and "repos/debian12/x86_64" in text


def test_rocky9_uses_dnf_module_stream_and_versionlock() -> None:
    out = plan(NvidiaDriver(), StackParams(), probe("rocky9"))
    text = "\n".join(lines(out))
    assert "dnf config-manager --add-repo https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo" in text
    assert "nvidia-driver:580-open" in text and "dnf install -y nvidia-open" in text
    assert "kernel-devel-matched" in text and "dnf versionlock add" in text


def test_mirror_replaces_the_official_repository() -> None:
    i = inv(nvidia={"cuda_repo": "http://mirror.lab:8080/cuda/ubuntu2204/x86_64"})
    text = "\n".join(lines(plan(NvidiaDriver(), StackParams(), probe("ubuntu2204"), inventory=i)))
    assert "http://mirror.lab:8080/cuda/ubuntu2204/x86_64/cuda-keyring_1.1-1_all.deb" in text
    assert "developer.download.nvidia.com" not in text


def test_installed_and_held_driver_is_noop() -> None:
    st = probe("ubuntu2204", {"nvidia-driver-580-open": "580.95.05-0ubuntu1", "linux-headers-5.15.0-100-generic": "5.15.0-100.110"},
               held=("nvidia-driver-580-open",))
    out = plan(NvidiaDriver(), StackParams(), st)
    assert isinstance(out, NoOp) and "580.95.05" in out.reason


def test_blackwell_refuses_proprietary_modules() -> None:
    out = plan(NvidiaDriver(), StackParams(), probe("ubuntu2204"), node=Node(gpu_kind=GpuKind.B200),
               inventory=inv(nvidia={"open_kernel_modules": False}))
    assert isinstance(out, Fail) and "open kernel modules" in out.message


def test_manage_false_verifies_only() -> None:
    out = plan(NvidiaDriver(), StackParams(), probe("ubuntu2204"), inventory=inv(manage=False))
    assert isinstance(out, Fail) and "stack.manage is false" in (out.hint or "")


def test_amd_host_skips_nvidia_tasks() -> None:
    for task in (NvidiaDriver(), NvidiaPersistence(), FabricManager()):
        assert isinstance(plan(task, StackParams(), probe("ubuntu2204"), node=Node(gpu_kind=GpuKind.MI300X)), Skip)


FM_PKGS = {"nvidia-driver-580-open": "580.95.05-0ubuntu1", "linux-headers-5.15.0-100-generic": "1"}


def test_fabric_manager_locked_to_driver_version_on_hgx() -> None:
    out = plan(FabricManager(), StackParams(), probe("ubuntu2204", FM_PKGS))
    text = "\n".join(lines(out))
    assert "nvidia-fabricmanager=580.95.05-1" in text
    assert "apt-mark hold nvidia-fabricmanager" in text
    assert "systemctl enable nvidia-fabricmanager" in text
    # no driver loaded yet (a reboot is pending): enabled, not started (it would fail)
    assert "systemctl restart nvidia-fabricmanager" not in text and "pending reboot" in out.summary


SMI_OK = "0, NVIDIA H200, 143771 MiB, 580.95.05, Enabled\n"
PROC_OK = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build"


def test_fabric_manager_started_once_the_driver_is_loaded() -> None:
    out = plan(FabricManager(), StackParams(), probe("ubuntu2204", FM_PKGS, smi=SMI_OK, proc=PROC_OK))
    assert "systemctl restart nvidia-fabricmanager" in "\n".join(lines(out))


def test_mirror_base_url_gets_distro_and_arch_appended() -> None:
    i = inv(nvidia={"cuda_repo": "http://10.0.0.2:8081/cuda/repos"})
    text = "\n".join(lines(plan(NvidiaDriver(), StackParams(), probe("debian12"), inventory=i)))
    assert "http://10.0.0.2:8081/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb" in text
    assert "UPLOAD /etc/apt/sources.list.d/cuda-debian12-x86_64.list" in text


def test_working_driver_from_outside_the_package_manager_is_left_alone() -> None:
    out = plan(NvidiaDriver(), StackParams(), probe("ubuntu2204", smi=SMI_OK, proc=PROC_OK))
    assert isinstance(out, NoOp) and "outside the package manager" in out.reason


def test_no_module_tree_means_no_headers() -> None:
    text = "\n".join(lines(plan(NvidiaDriver(), StackParams(), probe("debian12", extra="@@module_tree 1\n"))))
    assert "linux-headers" not in text and "nvidia-driver-580-open" in text


def test_docker_gets_the_inventory_insecure_registries() -> None:
    daemon = '@@daemon_json 0\n{"log-driver": "json-file"}\n@@docker 0\n/usr/bin/docker\n'
    st = probe("debian12", services="docker active enabled\n", extra=daemon)
    out = plan(DockerEngine(), ContainerParams(), st, inventory=inv(insecure_registries=["10.0.0.2:5000"]))
    assert isinstance(out, Change) and "10.0.0.2:5000" in out.summary
    upload = next(c for c in out.commands if isinstance(c, Upload))
    assert b'"insecure-registries": [\n    "10.0.0.2:5000"' in upload.content and b"json-file" in upload.content


def test_fabric_manager_skipped_without_nvswitch() -> None:
    assert isinstance(plan(FabricManager(), StackParams(), probe("ubuntu2204", FM_PKGS), node=Node(gpu_count=2)), Skip)


def test_fabric_manager_noop_when_matching_and_active() -> None:
    pk = {**FM_PKGS, "nvidia-fabricmanager": "580.95.05-1", "libnvidia-nscq": "580.95.05-1"}
    st = probe("ubuntu2204", pk, held=("nvidia-fabricmanager", "libnvidia-nscq"),
               services="nvidia-fabricmanager active enabled")
    assert isinstance(plan(FabricManager(), StackParams(), st), NoOp)


def test_blackwell_gets_nvlsm() -> None:
    out = plan(FabricManager(), StackParams(), probe("ubuntu2404", FM_PKGS), node=Node(gpu_kind=GpuKind.B200))
    assert any("nvlsm" in ln for ln in lines(out))


def test_persistence_dropin_and_enable() -> None:
    out = plan(NvidiaPersistence(), StackParams(), probe("ubuntu2204"))
    assert isinstance(out, Change)
    assert any(isinstance(c, Upload) and b"--persistence-mode" in c.content for c in out.commands)


def test_container_toolkit_configures_docker_runtime() -> None:
    out = plan(NvidiaContainerToolkit(), ContainerParams(), probe("ubuntu2204", extra="@@docker 0\n/usr/bin/docker\n"))
    text = "\n".join(lines(out))
    assert "nvidia-container-toolkit" in text
    assert "nvidia-ctk runtime configure --runtime=docker" in text and "systemctl restart docker" in text


def test_container_toolkit_skipped_for_venv_runtime() -> None:
    assert isinstance(plan(NvidiaContainerToolkit(), ContainerParams(), probe("ubuntu2204"), inventory=inv(runtime="venv")), Skip)


def test_docker_engine_installed_when_missing() -> None:
    out = plan(DockerEngine(), ContainerParams(), probe("debian12"))
    assert any("docker.io" in ln for ln in lines(out))
    ok = probe("debian12", extra="@@docker 0\n/usr/bin/docker\n", services="docker active enabled")
    assert isinstance(plan(DockerEngine(), ContainerParams(), ok), NoOp)


@dataclass
class Ssh:
    user: str = "ubuntu"


@pytest.mark.parametrize("os_key,needle", [
    ("ubuntu2204", "repo.radeon.com/amdgpu-install/7.2/ubuntu/jammy/amdgpu-install_7.2.70200-1_all.deb"),
    ("rocky9", "amdgpu-install-7.2.70200-1.el9.noarch.rpm"),
])
def test_amd_rocm_install(os_key: str, needle: str) -> None:
    node = Node(gpu_kind=GpuKind.MI300X, ssh=Ssh())
    out = plan(AmdRocm(), AmdParams(), probe(os_key), node=node, inventory=inv(runtime="venv"))
    text = "\n".join(lines(out))
    assert needle in text and "amdgpu-dkms rocm" in text and "usermod -a -G render,video ubuntu" in text


def test_amd_docker_runtime_needs_only_the_kernel_driver() -> None:
    node = Node(gpu_kind=GpuKind.MI355X, ssh=Ssh())
    out = plan(AmdRocm(), AmdParams(), probe("ubuntu2404"), node=node)
    text = "\n".join(lines(out))
    assert "install -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold amdgpu-dkms" in text
    assert " rocm" not in text.split("amdgpu-dkms", 1)[1].splitlines()[0]


def test_rocm_release_names() -> None:
    assert release_and_pkgver("7.2.0") == ("7.2", "7.2.70200")
    assert release_and_pkgver("7.0.1") == ("7.0.1", "7.0.1.70001")


SMI8 = "\n".join(f"{i}, NVIDIA H200, 143771, 580.95.05, Enabled" for i in range(8))


def test_reboot_reasons() -> None:
    inst = {"nvidia-driver-580-open": "580.95.05-0ubuntu1"}
    assert reboot_reason(parse_stack(probe("ubuntu2204", inst)), "nvidia", "580") == \
        "driver 580.95.05 installed but no NVIDIA kernel module loaded"
    mism = probe("ubuntu2204", inst, proc="NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build")
    assert "580.95.05 installed but 580.65.06 loaded" in (reboot_reason(parse_stack(mism), "nvidia", "580") or "")
    assert "mismatch" in (reboot_reason(parse_stack(probe("ubuntu2204", inst, smi="Failed to initialize NVML: Driver/library version mismatch")), "nvidia", "580") or "")
    assert reboot_reason(parse_stack(probe("ubuntu2204", inst, smi=SMI8)), "nvidia", "580") is None
    assert reboot_reason(parse_stack(probe("ubuntu2204", reboot=True)), "nvidia", "580") == "/var/run/reboot-required is present"


def test_verify_counts_kind_memory_fm_persistence() -> None:
    inst = {"nvidia-driver-580-open": "580.95.05-0ubuntu1"}
    good = probe("ubuntu2204", inst, smi=SMI8, services="nvidia-fabricmanager active enabled")
    assert isinstance(plan(GpuVerify(), VerifyParams(), good), NoOp)
    few = probe("ubuntu2204", inst, smi="\n".join(SMI8.splitlines()[:6]), services="nvidia-fabricmanager active enabled")
    out = plan(GpuVerify(), VerifyParams(), few)
    assert isinstance(out, Fail) and "6 GPUs found, inventory says 8 x H200" in out.message
    no_fm = probe("ubuntu2204", inst, smi=SMI8)
    assert "fabricmanager is not active" in plan(GpuVerify(), VerifyParams(), no_fm).message
    off = probe("ubuntu2204", inst, smi=SMI8.replace("Enabled", "Disabled"), services="nvidia-fabricmanager active enabled")
    assert "persistence" in plan(GpuVerify(), VerifyParams(), off).message
    h100 = probe("ubuntu2204", inst, smi=SMI8, services="nvidia-fabricmanager active enabled")
    assert "is not H100" in plan(GpuVerify(), VerifyParams(), h100, node=Node(gpu_kind=GpuKind.H100)).message


def test_ecc_and_remap_problems_reported() -> None:
    text = probe("ubuntu2204", {"nvidia-driver-580-open": "580.95.05-0ubuntu1"}, smi=SMI8,
                 services="nvidia-fabricmanager active enabled",
                 extra="@@smi_health 0\n0, 0, No, No\n3, 2, Yes, No\n")
    out = plan(GpuVerify(), VerifyParams(), text)
    assert isinstance(out, Fail) and "GPU 3: 2 uncorrectable" in out.message and "row remapping pending" in out.message


def test_driver_parity_across_replica() -> None:
    assert driver_parity({"a": "580.95.05", "b": "580.95.05"}, [["a", "b"]]) == []
    assert driver_parity({"a": "580.95.05", "b": "580.65.06"}, [["a", "b"]]) == [
        "replica 0: driver versions differ (a=580.95.05, b=580.65.06)"]


def test_parse_real_proc_version_fixture() -> None:
    text = "@@proc_version 0\nNVRM version: NVIDIA UNIX Open Kernel Module for x86_64  590.48.01  Release Build  (root@tpgds-aihub0007)\n"
    st = parse_stack(text)
    assert st.loaded_driver == "590.48.01" and st.loaded_open is True


def test_cuda_key_is_pinned_and_the_keyring_package_never_installed() -> None:
    text = "\n".join(lines(plan(NvidiaDriver(), StackParams(), probe("ubuntu2204"))))
    assert "EB693B3035CD5710E231E123A4B469963BF863CC" in text  # NVIDIA's 3bf863cc by default
    assert "dpkg-deb --fsys-tarfile" in text and "dpkg -i" not in text
    assert "UPLOAD /etc/apt/sources.list.d/cuda-ubuntu2204-x86_64.list" in text
    site = "AB" * 20
    text = "\n".join(lines(plan(NvidiaDriver(), StackParams(), probe("debian12"),
                                inventory=inv(nvidia={"cuda_repo": "http://10.0.0.2:8081/cuda/repos",
                                                      "cuda_key_fingerprints": [site]}))))
    assert site in text and "EB693B3035CD5710E231E123A4B469963BF863CC" not in text


def test_repository_already_pointed_at_with_signed_by_is_kept() -> None:
    src = "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/ /"
    text = probe("ubuntu2204").replace("@@apt_sources 0\n", f"@@apt_sources 0\n{src}\n")
    assert "cuda-keyring" not in "\n".join(lines(plan(NvidiaDriver(), StackParams(), text)))


def test_container_toolkit_key_is_pinned() -> None:
    out = plan(NvidiaContainerToolkit(), ContainerParams(), probe("ubuntu2204", extra="@@docker 0\n/usr/bin/docker\n"))
    text = "\n".join(lines(out))
    assert "C95B321B61E88C1809C4F759DDCAE044F796ECB0" in text and "gpg --batch --yes --dearmor" not in text
    site = "CD" * 20
    out = plan(NvidiaContainerToolkit(), ContainerParams(), probe("ubuntu2204", extra="@@docker 0\n/usr/bin/docker\n"),
               inventory=inv(nvidia={"container_toolkit_key_fingerprints": [site]}))
    assert site in "\n".join(lines(out))
