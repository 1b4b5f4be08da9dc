"""NVIDIA host stack: CUDA repository, driver (open modules), persistence, fabric manager, NVLSM.

Package names follow gpu-stack.md section 1.4: branch <= 580 has versioned names
(``nvidia-driver-580-open``); from 590 the pinning package ``nvidia-driver-pinning-<br>`` is
installed first and the names lose the branch (``nvidia-open``). EL9 uses DNF module streams.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from glm5cluster.commands import Command, Shell, Upload
from glm5cluster.facts.packages import StackFact, StackState
from glm5cluster.tasks import gpu_stack as gs
from glm5cluster.tasks import trust
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Outcome, Params, Skip, Task

CUDA_BASE = "https://developer.download.nvidia.com/compute/cuda/repos"
KEYRING_DEB = "cuda-keyring_1.1-1_all.deb"
CUDA_KEYRING = "/usr/share/keyrings/cuda-archive-keyring.gpg"
SUPPORTED = {("ubuntu", "22.04"), ("ubuntu", "24.04"), ("debian", "12")}
PERSISTENCED_DROPIN = "/etc/systemd/system/nvidia-persistenced.service.d/glm5cluster.conf"
PERSISTENCED_UNIT = (
    "# written by glm5cluster: run the daemon with persistence enabled (persistence mode on every GPU)\n"
    "[Service]\nExecStart=\nExecStart=/usr/bin/nvidia-persistenced --persistence-mode --verbose\n"
)


class StackParams(Params):
    """Overrides of the inventory's ``stack.nvidia`` for one step (normally left empty)."""

    driver_branch: str | None = None


def branch(params: StackParams, ctx: Any) -> str:
    return params.driver_branch or gs.stack_of(ctx).nvidia.driver_branch


def use_open(ctx: Any) -> bool:
    flag = gs.stack_of(ctx).nvidia.open_kernel_modules
    return True if flag is None else flag


def cuda_distro(st: StackState) -> str | None:
    arch = "sbsa" if st.arch in ("aarch64", "arm64") else "x86_64"
    if st.family == "rhel":
        return f"rhel9/{arch}" if st.os_version.startswith("9") else None
    if (st.os_id, st.os_version) in SUPPORTED:
        return f"{st.os_id}{st.os_version.replace('.', '')}/{arch}"
    return None


def driver_packages(st: StackState, br: str, open_modules: bool) -> list[list[str]]:
    """Install batches, in order (the >=590 pinning package must come first)."""
    if st.family == "rhel":
        return [["nvidia-open" if open_modules else "cuda-drivers"]]
    if int(br) <= 580:
        return [[f"nvidia-driver-{br}-open" if open_modules else f"cuda-drivers-{br}"]]
    return [[f"nvidia-driver-pinning-{br}"], ["nvidia-open" if open_modules else "cuda-drivers"]]


def installed_driver_version(st: StackState, br: str) -> str | None:
    """Upstream version of the installed driver of this branch, or None."""
    for name in (f"nvidia-driver-{br}-open", f"cuda-drivers-{br}", f"libnvidia-compute-{br}",
                 "nvidia-open", "kmod-nvidia-open-dkms", "cuda-drivers", "libnvidia-compute",
                 "nvidia-driver", "nvidia-driver-cuda"):
        v = st.packages.get(name)
        if v and gs.upstream(v).startswith(f"{br}."):
            return gs.upstream(v)
    return None


def cuda_repo_url(st: StackState, ctx: Any) -> str | None:
    """The CUDA repository for this host, ending in ``/``. ``stack.nvidia.cuda_repo`` mirrors
    ``https://developer.download.nvidia.com/compute/cuda/repos``: ``<distro>/<arch>/`` is
    appended unless the URL already names the architecture directory."""
    distro = cuda_distro(st)
    if distro is None:
        return None
    mirror = gs.stack_of(ctx).nvidia.cuda_repo
    base = (mirror or CUDA_BASE).rstrip("/")
    if base.endswith(("/x86_64", "/sbsa")):
        return base + "/"
    return f"{base}/{distro}/"


def cuda_list_file(st: StackState) -> str:
    distro = (cuda_distro(st) or "cuda/x86_64").split("/")
    return f"/etc/apt/sources.list.d/cuda-{distro[0]}-{distro[1]}.list"


def repo_commands(st: StackState, ctx: Any) -> list[Command]:
    mirror = gs.stack_of(ctx).nvidia.cuda_repo
    url = cuda_repo_url(st, ctx)
    distro = cuda_distro(st)
    if st.family == "rhel":
        if any(r.startswith(("[cuda-rhel9", "[glm5cluster-cuda")) for r in st.yum_repos):
            return []
        crb = (["subscription-manager", "repos", "--enable", f"codeready-builder-for-rhel-9-{st.arch}-rpms"]
               if st.os_id == "rhel" else ["dnf", "config-manager", "--set-enabled", "crb"])
        plugins = ["dnf-plugins-core", "epel-release"] if st.os_id != "rhel" else ["dnf-plugins-core"]
        cmds: list[Command] = [gs.install(st, plugins, "dnf plugins, EPEL"),
                               Shell.cmd(*crb, sudo=True, description="enable CRB")]
        if mirror:
            repo = (f"[glm5cluster-cuda]\nname=CUDA (site mirror)\nbaseurl={url}\nenabled=1\ngpgcheck=1\n"
                    f"gpgkey={url}D42D0685.pub\n")
            cmds.append(Upload("/etc/yum.repos.d/glm5cluster-cuda.repo", repo.encode(), 0o644, sudo=True))
        else:
            cmds.append(Shell.cmd("dnf", "config-manager", "--add-repo", f"{CUDA_BASE}/{distro}/cuda-rhel9.repo",
                                  sudo=True, description="add the CUDA repository"))
        return cmds
    assert url is not None
    line = f"deb [signed-by={CUDA_KEYRING}] {url} /"
    if any(url.rstrip("/") in ln and f"signed-by={CUDA_KEYRING}" in ln for ln in st.apt_sources):
        return []
    cmds = []
    contrib = gs.debian_contrib_command(st)
    if contrib is not None:
        cmds.append(contrib)
    # The key comes out of cuda-keyring (the repository's or the mirror's) and is installed only
    # when its fingerprint is pinned; the package is never installed (its maintainer scripts
    # would run as root, whatever key it carries). The list is the one cuda-keyring would write.
    pins = trust.cuda_pins(gs.stack_of(ctx).nvidia)
    script = (
        "set -e; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; "
        f"curl -fsSL {shlex.quote(url + KEYRING_DEB)} -o \"$t/k.deb\"; "
        f"dpkg-deb --fsys-tarfile \"$t/k.deb\" | tar -xO --wildcards '*{CUDA_KEYRING}' > \"$t/k.gpg\"; "
        + trust.keycheck('"$t/k.gpg"', CUDA_KEYRING, pins)
    )
    cmds.append(Shell.sh(script, sudo=True, timeout=300,
                         description=f"install the CUDA repository key from {url} (pinned: {', '.join(p[-8:] for p in pins)})"))
    cmds.append(Upload(cuda_list_file(st), (line + "\n").encode(), 0o644, sudo=True,
                       description="add the CUDA repository" + (" (mirror)" if mirror else "")))
    cmds.append(gs.apt_update())
    return cmds


def unmanaged_driver(st: StackState, br: str) -> str | None:
    """A working driver of branch ``br`` that no package of ours installed (a vendor ``.run``
    installer, an image): its version, else None. Left alone rather than fought over."""
    if installed_driver_version(st, br) is not None or not st.smi_ok or not st.smi_driver:
        return None
    return st.smi_driver if st.smi_driver.startswith(f"{br}.") else None


def reboot_pending(st: StackState, br: str) -> bool:
    """The driver installed on disk is not the one loaded (or none is loaded yet)."""
    have = installed_driver_version(st, br)
    loaded = st.loaded_driver or (st.smi_driver if st.smi_ok else None)
    return st.smi_mismatch or (have is not None and have != loaded)


class NvidiaDriver(Task[StackParams]):
    """CUDA repository, running-kernel headers and the driver branch with open modules, held."""

    name = "gpu.nvidia_driver"
    Params = StackParams

    def facts(self, params: StackParams, ctx: HostContext) -> Mapping[str, StackFact]:
        return {"stack": StackFact()}

    def plan(self, params: StackParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        if gs.vendor_of(ctx) != "nvidia":
            return Skip("not an NVIDIA host")
        st: StackState = facts["stack"]
        br = branch(params, ctx)
        open_modules = use_open(ctx)
        if gs.profile_of(ctx).open_kernel_modules_required and not open_modules:
            return Fail(f"{ctx.node.gpu_kind.value} needs the open kernel modules",
                        "drop stack.nvidia.open_kernel_modules: false (Blackwell runs only open modules)")
        if st.family == "unknown" or cuda_distro(st) is None:
            return Fail(f"unsupported OS {st.os_id} {st.os_version} for the NVIDIA stack",
                        "supported: Ubuntu 22.04/24.04, Debian 12, RHEL/Rocky/Alma 9")
        batches = driver_packages(st, br, open_modules)
        wanted = [p for b in batches for p in b]
        have = installed_driver_version(st, br)
        outside = unmanaged_driver(st, br)
        if outside is not None:
            return NoOp(f"driver {outside} loaded and working, installed outside the package manager: left as is")
        missing = [p for p in wanted if not st.has(p)]
        if st.family == "rhel" and have is None:
            missing = wanted
        heads = gs.headers_missing(st)
        if not missing and not heads:
            holds = gs.hold(st, wanted)
            if not holds:
                return NoOp(f"driver {have or br} ({'open' if open_modules else 'proprietary'} modules) installed and held")
            return Change(holds, f"hold driver packages {' '.join(wanted)}")
        if not gs.stack_of(ctx).manage:
            return Fail(f"driver branch {br} is not installed ({', '.join(missing + heads)} missing)",
                        "stack.manage is false: install the driver yourself or set it to true")
        cmds: list[Command] = list(repo_commands(st, ctx))
        stale = [p for p in st.held if p.startswith(("nvidia-", "libnvidia-", "cuda-drivers")) and p not in wanted]
        cmds += gs.unhold(st, stale)
        if heads:
            cmds.append(gs.install(st, heads, f"headers for kernel {st.kernel}"))
        if st.family == "rhel":
            stream = f"{br}-open" if open_modules else f"{br}-dkms"
            cmds.append(Shell.cmd("dnf", "module", "reset", "-y", "nvidia-driver", sudo=True))
            cmds.append(Shell.cmd("dnf", "module", "enable", "-y", f"nvidia-driver:{stream}", sudo=True, timeout=900,
                                  description=f"enable module stream nvidia-driver:{stream}"))
        for batch in batches:
            cmds.append(gs.install(st, batch, f"install {' '.join(batch)}"))
        cmds += gs.hold(st, wanted)
        flavor = "open" if open_modules else "proprietary"
        return Change(cmds, f"install NVIDIA driver branch {br} ({flavor} modules): {' '.join(wanted)}")


class NvidiaPersistence(Task[StackParams]):
    """nvidia-persistenced enabled and running with ``--persistence-mode`` (gpu-stack.md 1.6)."""

    name = "gpu.nvidia_persistence"
    Params = StackParams

    def facts(self, params: StackParams, ctx: HostContext) -> Mapping[str, StackFact]:
        return {"stack": StackFact()}

    def plan(self, params: StackParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        if gs.vendor_of(ctx) != "nvidia":
            return Skip("not an NVIDIA host")
        st: StackState = facts["stack"]
        unit = "nvidia-persistenced"
        gpus_on = bool(st.gpus) and all(g.persistence for g in st.gpus)
        if st.active(unit) and st.enabled(unit) and (gpus_on or not st.smi_ok):
            return NoOp("nvidia-persistenced active and enabled" + (", persistence Enabled on every GPU" if gpus_on else ""))
        if gpus_on and not st.has(unit):
            return NoOp("persistence Enabled on every GPU (driver not from packages: no nvidia-persistenced unit)")
        if reboot_pending(st, branch(params, ctx)):
            # the daemon needs the new driver loaded: enable it now, it starts with the reboot
            if st.enabled(unit):
                return NoOp("nvidia-persistenced enabled; starts after the pending reboot")
            return Change([Upload(PERSISTENCED_DROPIN, PERSISTENCED_UNIT.encode(), 0o644, sudo=True),
                           Shell.cmd("systemctl", "daemon-reload", sudo=True),
                           Shell.cmd("systemctl", "enable", unit, sudo=True)],
                          "enable nvidia-persistenced (persistence mode); it starts after the pending reboot")
        cmds: list[Command] = [
            Upload(PERSISTENCED_DROPIN, PERSISTENCED_UNIT.encode(), 0o644, sudo=True),
            Shell.cmd("systemctl", "daemon-reload", sudo=True),
            Shell.cmd("systemctl", "enable", unit, sudo=True),
            Shell.cmd("systemctl", "restart", unit, sudo=True, description="(re)start nvidia-persistenced"),
        ]
        return Change(cmds, "enable nvidia-persistenced with persistence mode")


def fabric_manager_packages(st: StackState, br: str, version: str) -> list[str]:
    """Fabric manager pinned to exactly the driver version (gpu-stack.md 1.5). ``libnvidia-nscq``
    (NVSwitch queries for DCGM) is not needed to serve and is left to the site."""
    if st.family == "rhel":
        return [f"nvidia-fabricmanager-{version}"]
    if int(br) >= 580:
        return [f"nvidia-fabricmanager={version}-1"]
    return [f"nvidia-fabricmanager-{br}={version}-1"]


class FabricManager(Task[StackParams]):
    """Fabric manager at exactly the driver version, held, enabled and running; NVLSM on Blackwell."""

    name = "gpu.fabric_manager"
    Params = StackParams

    def facts(self, params: StackParams, ctx: HostContext) -> Mapping[str, StackFact]:
        return {"stack": StackFact()}

    def plan(self, params: StackParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        if gs.vendor_of(ctx) != "nvidia":
            return Skip("not an NVIDIA host")
        st: StackState = facts["stack"]
        if not gs.has_nvswitch(ctx, st):
            return Skip("no NVSwitch on this board: fabric manager not needed")
        br = branch(params, ctx)
        drv = installed_driver_version(st, br) or unmanaged_driver(st, br)
        if drv is None:
            return Fail(f"fabric manager needs the driver first (branch {br} not installed)",
                        "run gpu.nvidia_driver before gpu.fabric_manager")
        fm_name = "nvidia-fabricmanager" if int(br) >= 580 or st.family == "rhel" else f"nvidia-fabricmanager-{br}"
        fm_ver = st.packages.get(fm_name)
        cmds: list[Command] = []
        pinned = [fm_name]
        if fm_ver is None or gs.upstream(fm_ver) != drv:
            if not gs.stack_of(ctx).manage:
                return Fail(f"fabric manager {fm_ver or 'missing'} != driver {drv}",
                            "stack.manage is false: install nvidia-fabricmanager at the driver version")
            cmds += repo_commands(st, ctx)
            cmds += gs.unhold(st, pinned)
            cmds.append(gs.install(st, fabric_manager_packages(st, br, drv), f"install fabric manager {drv}"))
            cmds += gs.hold(replace(st, held=frozenset()), pinned)
        elif any(p not in st.held for p in pinned):
            cmds += gs.hold(st, pinned)
        if gs.profile_of(ctx).nvlink_subnet_manager:
            nv = [p for p in ("nvlsm", "infiniband-diags") if not st.has(p)]
            if nv:
                cmds.append(gs.install(st, nv, "install NVLink subnet manager"))
                cmds.append(Upload("/etc/modules-load.d/glm5cluster-nvlsm.conf", b"mlx5_core\nib_umad\n", 0o644, sudo=True))
                cmds.append(Shell.cmd("modprobe", "-a", "mlx5_core", "ib_umad", sudo=True))
        unit = "nvidia-fabricmanager"
        if reboot_pending(st, br):  # FM refuses to start until the new driver is loaded
            if not st.enabled(unit):
                cmds.append(Shell.cmd("systemctl", "enable", unit, sudo=True))
            if cmds:
                return Change(cmds, f"fabric manager {drv} (= driver) installed, held and enabled; starts after the pending reboot")
            return NoOp(f"fabric manager {drv} = driver, enabled; starts after the pending reboot")
        if cmds or not st.active(unit) or not st.enabled(unit):
            cmds.append(Shell.cmd("systemctl", "enable", unit, sudo=True))
            cmds.append(Shell.cmd("systemctl", "restart" if cmds[:-1] else "start", unit, sudo=True,
                                  description="start nvidia-fabricmanager"))
            return Change(cmds, f"fabric manager {drv} (= driver), held, enabled and started")
        return NoOp(f"fabric manager {drv} = driver, active and enabled")
