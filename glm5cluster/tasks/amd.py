"""AMD host stack on Ubuntu and RHEL 9: amdgpu-install repo, amdgpu-dkms (+ ROCm user space
for the venv runtime), render/video groups (gpu-stack.md section 4)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from glm5cluster.commands import Command, Shell
from glm5cluster.facts.packages import StackFact, StackState
from glm5cluster.tasks import gpu_stack as gs
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Outcome, Params, Skip, Task

RADEON = "https://repo.radeon.com/amdgpu-install"


class AmdParams(Params):
    rocm_version: str | None = None
    user: str | None = None  # added to render+video; default: the SSH user


def release_and_pkgver(version: str) -> tuple[str, str]:
    """``7.2.0`` -> (``7.2``, ``7.2.70200``); ``7.2.1`` -> (``7.2.1``, ``7.2.1.70201``)."""
    parts = [int(p) for p in version.split(".")] + [0, 0]
    major, minor, patch = parts[:3]
    rel = f"{major}.{minor}" if patch == 0 else f"{major}.{minor}.{patch}"
    return rel, f"{rel}.{major}{minor:02d}{patch:02d}"


def installer_url(st: StackState, version: str, mirror: str | None) -> str | None:
    rel, pkgver = release_and_pkgver(version)
    if st.family == "rhel":
        name = f"amdgpu-install-{pkgver}-1.el9.noarch.rpm"
        return f"{mirror.rstrip('/')}/{name}" if mirror else f"{RADEON}/{rel}/el/{st.os_version}/{name}"
    if st.os_id != "ubuntu" or st.codename not in ("jammy", "noble"):
        return None
    name = f"amdgpu-install_{pkgver}-1_all.deb"
    return f"{mirror.rstrip('/')}/{name}" if mirror else f"{RADEON}/{rel}/ubuntu/{st.codename}/{name}"


def wanted_packages(host_gpu_userspace: bool) -> list[str]:
    # a container brings ROCm in its image: the host needs only the kernel driver ("--usecase=dkms")
    return ["amdgpu-dkms", "rocm"] if host_gpu_userspace else ["amdgpu-dkms"]


class AmdRocm(Task[AmdParams]):
    name = "gpu.amd_rocm"
    Params = AmdParams

    def facts(self, params: AmdParams, ctx: HostContext) -> Mapping[str, StackFact]:
        return {"stack": StackFact()}

    def plan(self, params: AmdParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        if gs.vendor_of(ctx) != "amd":
            return Skip("not an AMD host")
        st: StackState = facts["stack"]
        spec = gs.stack_of(ctx)
        version = params.rocm_version or spec.amd.rocm_version
        user = params.user or ctx.node.ssh.user
        pkgs = wanted_packages(gs.runtime_of(ctx).host_gpu_userspace)
        missing = [p for p in pkgs if not st.has(p)]
        if "rocm" in pkgs and st.has("rocm") and not st.packages["rocm"].split(":")[-1].startswith(version):
            missing.append("rocm")  # another ROCm release is installed
        groups_missing = [g for g in ("render", "video") if g not in st.groups]
        if not missing and not groups_missing:
            return NoOp(f"{' '.join(pkgs)} installed, {user} in render+video")
        cmds: list[Command] = []
        if missing:
            if not spec.manage:
                return Fail(f"ROCm stack incomplete ({', '.join(missing)} missing)",
                            "stack.manage is false: install amdgpu-dkms/ROCm yourself")
            url = installer_url(st, version, spec.amd.repo)
            if url is None:
                return Fail(f"unsupported OS {st.os_id} {st.os_version} for ROCm",
                            "supported: Ubuntu 22.04/24.04, RHEL/Rocky 9")
            if st.family == "rhel":
                pre = ["kernel-headers", f"kernel-devel-{st.kernel}"]
                cmds.append(gs.install(st, ["epel-release"] if st.os_id != "rhel" else ["dnf-plugins-core"], "EPEL"))
                cmds.append(Shell.cmd("dnf", "config-manager", "--set-enabled", "crb", sudo=True))
            else:
                pre = [f"linux-headers-{st.kernel}", f"linux-modules-extra-{st.kernel}"]
                cmds.append(gs.apt_update())
            cmds.append(gs.install(st, [p for p in pre if not st.has(p)] or pre, "kernel headers"))
            fetch = (f"set -e; t=$(mktemp -d); curl -fsSL {shlex.quote(url)} -o \"$t/{url.rsplit('/', 1)[1]}\"; "
                     + (f"dnf install -y \"$t/{url.rsplit('/', 1)[1]}\"" if st.family == "rhel"
                        else f"DEBIAN_FRONTEND=noninteractive apt-get install -y \"$t/{url.rsplit('/', 1)[1]}\"")
                     + "; rm -rf \"$t\"")
            cmds.append(Shell.sh(fetch, sudo=True, timeout=600, description=f"install amdgpu-install for ROCm {version}"))
            if st.family == "debian":
                cmds.append(gs.apt_update())
            cmds.append(gs.install(st, pkgs, f"install {' '.join(pkgs)}"))
            cmds += gs.hold(st, pkgs)
        if groups_missing:
            cmds.append(Shell.cmd("usermod", "-a", "-G", "render,video", user, sudo=True,
                                  description=f"add {user} to render,video"))
        return Change(cmds, f"ROCm {version}: {' '.join(missing) or 'groups'}")
