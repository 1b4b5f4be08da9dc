"""Every stand-in package and the repositories that hold them (real names and versions)."""

from __future__ import annotations

from .recipe import KEYRING, Deb, File, Repo

BRANCH = "580"
# 580.159.04 is what the lab hosts come with (lab/hosts.py NVIDIA_DRIVER): a site whose driver was
# installed outside the package manager still gets a fabric manager of the same version.
DRIVER_VERSIONS = ("580.95.05", "580.105.08", "580.159.04")  # older ones exercise upgrades
TOOLKIT_VERSIONS = ("1.17.8", "1.18.0")
CUDA_DISTROS = ("debian12", "ubuntu2204", "ubuntu2404")
UBUNTU_SUITES = ("jammy", "noble")
AMDGPU_VERSION = "6.16.6"  # what amd-smi calls "amdgpu version"
ROCM_VERSION = "7.2.0"

SET_DRIVER = "/opt/glm5lab/bin/glm5lab-set-driver"

_DRIVER_POSTINST = f"""#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if [ ! -x {SET_DRIVER} ]; then
    echo "@PACKAGE@: this is a glm5lab stand-in; {SET_DRIVER} is missing (not a lab host)" >&2
    exit 1
  fi
  {SET_DRIVER} @DRIVER@
  loaded=$(cat /run/glm5lab/loaded-driver 2>/dev/null || true)
  if [ "$loaded" != "@DRIVER@" ]; then
    echo "@PACKAGE@: @KIND@ @DRIVER@ installed; loaded: ${{loaded:-none}}: reboot to load it"
    echo "*** System restart required ***" > /run/reboot-required
    echo "@PACKAGE@" >> /run/reboot-required.pkgs
  fi
fi
exit 0
"""

_DRIVER_POSTRM = f"""#!/bin/sh
set -e
case "$1" in
  remove|purge) [ ! -x {SET_DRIVER} ] || {SET_DRIVER} none ;;
esac
exit 0
"""

_UNIT_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  @ENABLE@
fi
exit 0
"""

_UNIT_POSTRM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
"""


def _deb_version(v: str) -> str:
    return f"{v}-1"


def _nvidia_driver(v: str) -> list[Deb]:
    dv = _deb_version(v)
    eq = f"(= {dv})"
    sub = {"DRIVER": v, "KIND": "NVIDIA driver (open kernel modules)", "BRANCH": BRANCH}
    lib = "/usr/lib/x86_64-linux-gnu"
    return [
        Deb(f"nvidia-dkms-{BRANCH}-open", dv, "NVIDIA driver open kernel module (glm5lab stand-in)",
            conflicts=(f"nvidia-dkms-{BRANCH}",), provides=("nvidia-dkms-kernel",),
            files=(File(f"/usr/src/nvidia-{v}/dkms.conf", text=f'PACKAGE_NAME="nvidia"\nPACKAGE_VERSION="{v}"\n'),),
            scripts={"postinst": _DRIVER_POSTINST, "postrm": _DRIVER_POSTRM}, subst=sub),
        Deb(f"libnvidia-compute-{BRANCH}", dv, "NVIDIA libcompute package, NVML (glm5lab stand-in)",
            files=(File(f"{lib}/libnvidia-ml.so.{v}", text=f"glm5lab stand-in NVML {v}\n"),
                   File(f"{lib}/libnvidia-ml.so.1", link=f"libnvidia-ml.so.{v}"))),
        Deb(f"nvidia-utils-{BRANCH}", dv, "NVIDIA driver support binaries (nvidia-smi is the lab simulator)",
            depends=(f"libnvidia-compute-{BRANCH} {eq}",)),
        Deb("nvidia-persistenced", dv, "daemon to maintain persistent software state in the NVIDIA driver (stand-in)",
            files=(File("/usr/bin/nvidia-persistenced", "nvidia-persistenced", mode=0o755),
                   File("/lib/systemd/system/nvidia-persistenced.service", "nvidia-persistenced.service")),
            scripts={"postinst": _UNIT_POSTINST.replace(
                "@ENABLE@", "systemctl enable nvidia-persistenced.service >/dev/null 2>&1 || true\n"
                "  systemctl restart nvidia-persistenced.service 2>/dev/null || true"), "postrm": _UNIT_POSTRM}),
        Deb(f"nvidia-compute-utils-{BRANCH}", dv, "NVIDIA compute utilities",
            depends=(f"nvidia-persistenced {eq}",)),
        Deb(f"nvidia-driver-{BRANCH}-open", dv, "NVIDIA driver metapackage, open kernel modules",
            depends=(f"nvidia-dkms-{BRANCH}-open {eq}", f"libnvidia-compute-{BRANCH} {eq}",
                     f"nvidia-utils-{BRANCH} {eq}", f"nvidia-compute-utils-{BRANCH} {eq}")),
        Deb(f"nvidia-open-{BRANCH}", dv, "NVIDIA open driver metapackage",
            depends=(f"nvidia-driver-{BRANCH}-open {eq}",)),
        Deb("nvidia-open", dv, "NVIDIA open driver metapackage (unversioned)",
            depends=(f"nvidia-open-{BRANCH} {eq}",)),
        Deb(f"nvidia-fabricmanager-{BRANCH}", dv, "Fabric Manager for NVSwitch based systems (stand-in)",
            files=(File("/usr/bin/nv-fabricmanager", "nv-fabricmanager", mode=0o755),
                   File("/lib/systemd/system/nvidia-fabricmanager.service", "nvidia-fabricmanager.service"),
                   File("/usr/share/nvidia/nvswitch/fabricmanager.cfg", "fabricmanager.cfg")),
            scripts={"postinst": _UNIT_POSTINST.replace("@ENABLE@", ":"), "postrm": _UNIT_POSTRM}),
        Deb("nvidia-fabricmanager", dv, "Fabric Manager (unversioned name)",
            depends=(f"nvidia-fabricmanager-{BRANCH} {eq}",)),
    ]


def _pinning() -> Deb:
    text = (f"Package: src:*nvidia*:any src:cuda-drivers:any src:cuda-compat:any\n"
            f"Pin: version {BRANCH}.*\nPin-Priority: 1000\n")
    return Deb(f"nvidia-driver-pinning-{BRANCH}", f"{BRANCH}-1", f"pin the NVIDIA driver to the R{BRANCH} branch",
               arch="all", files=(File(f"/etc/apt/preferences.d/nvidia-driver-pinning-{BRANCH}", text=text),))


def _cuda_keyring(distro: str) -> Deb:
    url = f"https://developer.download.nvidia.com/compute/cuda/repos/{distro}/x86_64/"
    line = f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {url} /\n"
    return Deb("cuda-keyring", "1.1-1", "GPG keyring for the CUDA repository (the lab archive key)",
               arch="all", section="misc",
               files=(File("/usr/share/keyrings/cuda-archive-keyring.gpg", KEYRING),
                      File(f"/etc/apt/sources.list.d/cuda-{distro}-x86_64.list", text=line)))


def _toolkit(v: str) -> list[Deb]:
    dv = _deb_version(v)
    sub = {"TOOLKIT": v}
    return [
        Deb("libnvidia-container1", dv, "NVIDIA container runtime library (stand-in)",
            files=(File(f"/usr/lib/x86_64-linux-gnu/libnvidia-container.so.{v}", text=f"stand-in {v}\n"),
                   File("/usr/lib/x86_64-linux-gnu/libnvidia-container.so.1", link=f"libnvidia-container.so.{v}"))),
        Deb("libnvidia-container-tools", dv, "NVIDIA container runtime library, command-line tools (stand-in)",
            depends=(f"libnvidia-container1 (>= {dv})",),
            files=(File("/usr/bin/nvidia-container-cli", "nvidia-container-cli", mode=0o755),
                   File("/usr/lib/nvidia-container-toolkit/glm5lab_gpus.py", "glm5lab_gpus.py")),
            subst=sub),
        Deb("nvidia-container-toolkit-base", dv, "NVIDIA Container Toolkit Base (nvidia-ctk, runtime; stand-in)",
            files=(File("/usr/bin/nvidia-ctk", "nvidia-ctk", mode=0o755),
                   File("/usr/bin/nvidia-container-runtime", "nvidia-container-runtime", mode=0o755),
                   File("/etc/nvidia-container-runtime/config.toml", "config.toml")),
            subst=sub),
        Deb("nvidia-container-toolkit", dv, "NVIDIA Container toolkit (runtime hook; stand-in)",
            depends=(f"nvidia-container-toolkit-base (= {dv})", f"libnvidia-container-tools (>= {dv})",
                     "libnvidia-container-tools (<< 2.0.0)"),
            files=(File("/usr/bin/nvidia-container-runtime-hook", "nvidia-container-runtime-hook", mode=0o755),),
            subst=sub),
    ]


def _amd() -> tuple[list[Deb], list[Deb], list[Deb], Deb]:
    sub = {"DRIVER": AMDGPU_VERSION, "KIND": "amdgpu driver", "ROCM": ROCM_VERSION}
    dkms = Deb("amdgpu-dkms", f"1:{AMDGPU_VERSION}.30300-2238411.22.04", "amdgpu driver in DKMS format (stand-in)",
               arch="all", files=(File(f"/usr/src/amdgpu-{AMDGPU_VERSION}/dkms.conf",
                                       text=f'PACKAGE_NAME="amdgpu"\nPACKAGE_VERSION="{AMDGPU_VERSION}"\n'),),
               scripts={"postinst": _DRIVER_POSTINST, "postrm": _DRIVER_POSTRM}, subst=sub)
    rv = f"{ROCM_VERSION}.70200-43~22.04"
    rocm = Deb("rocm", rv, "Radeon Open Compute (ROCm) software stack meta package (stand-in)",
               files=(File(f"/opt/rocm-{ROCM_VERSION}/.info/version", text=f"{ROCM_VERSION}-43\n"),
                      File("/opt/rocm", link=f"rocm-{ROCM_VERSION}")))
    ctk = Deb("amd-container-toolkit", "1.2.0", "AMD Container Toolkit (amd-ctk, amd-container-runtime; stand-in)",
              files=(File("/usr/bin/amd-ctk", "amd-ctk", mode=0o755),
                     File("/usr/bin/amd-container-runtime", "amd-container-runtime", mode=0o755),
                     File("/usr/lib/amd-container-toolkit/glm5lab_gpus.py", "glm5lab_gpus.py")),
              subst={"TOOLKIT": "1.2.0"})
    lists = {
        "/etc/apt/sources.list.d/amdgpu.list":
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/rocm.gpg] https://repo.radeon.com/amdgpu/30.30/ubuntu jammy main\n",
        "/etc/apt/sources.list.d/rocm.list":
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/rocm.gpg] https://repo.radeon.com/rocm/apt/7.2 jammy main\n",
    }
    install = Deb("amdgpu-install", "7.2.70200-1", "AMDGPU driver repository and installer (lab keyring)",
                  arch="all", section="misc",
                  files=(File("/etc/apt/keyrings/rocm.gpg", KEYRING),
                         *(File(dest, text=text) for dest, text in lists.items())))
    return [dkms], [rocm], [ctk], install


def repos() -> list[Repo]:
    """Every repository the mirror serves, with its path under the mirror's apt URL."""
    nvidia = [p for v in DRIVER_VERSIONS for p in _nvidia_driver(v)] + [_pinning()]
    out = [Repo(f"cuda/repos/{d}/x86_64", (*nvidia, _cuda_keyring(d)), label="CUDA (glm5lab)") for d in CUDA_DISTROS]
    toolkit = tuple(p for v in TOOLKIT_VERSIONS for p in _toolkit(v))
    out.append(Repo("libnvidia-container/stable/deb/amd64", toolkit, label="libnvidia-container (glm5lab)"))
    dkms, rocm, ctk, install = _amd()
    for suite in UBUNTU_SUITES:
        out.append(Repo("amdgpu/30.30/ubuntu", tuple(dkms), suite=suite, label="amdgpu (glm5lab)"))
        out.append(Repo("rocm/apt/7.2", tuple(rocm), suite=suite, label="ROCm (glm5lab)"))
        out.append(Repo("amd-container-toolkit/apt", tuple(ctk), suite=suite, label="amd-container-toolkit (glm5lab)"))
        out.append(Repo(f"amdgpu-install/7.2/ubuntu/{suite}", (install,), label="amdgpu-install (glm5lab)"))
    return out
