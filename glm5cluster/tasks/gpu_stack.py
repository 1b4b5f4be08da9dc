"""Shared pieces of the GPU-stack tasks: package-manager commands and inventory accessors.

Every function here is pure: facts (``StackState``) and inventory in, ``Shell`` commands out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from glm5cluster.commands import Shell
from glm5cluster.facts.packages import StackState
from glm5cluster.model.catalog import GpuProfile, gpu_profile
from glm5cluster.model.inventory import ServeSpec, StackSpec
from glm5cluster.runtime import Runtime, UnitRuntime, for_inventory

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}


def stack_of(ctx: Any) -> StackSpec:
    inv = getattr(ctx, "inventory", None)
    return inv.stack if inv is not None else StackSpec.model_validate({})


def runtime_of(ctx: Any) -> Runtime:
    """The runtime the inventory serves with (a plain playbook without one: the venv's default)."""
    inv = getattr(ctx, "inventory", None)
    return for_inventory(inv) if inv is not None else UnitRuntime(ServeSpec.model_validate({}).venv_path)


def profile_of(ctx: Any) -> GpuProfile:
    """The catalog's facts about this node's GPU kind (vendor, memory, NVSwitch, open modules)."""
    return gpu_profile(ctx.node.gpu_kind)


def vendor_of(ctx: Any) -> str:
    return profile_of(ctx).vendor


def has_nvswitch(ctx: Any, st: StackState) -> bool:
    """NVSwitch board: detected (/proc nvswitch devices, SW_MNG VPD) or an 8-GPU board of a kind
    the catalog marks ``nvswitch_fabric_manager`` (HGX).

    A ``nvswitch: "false"`` / ``"true"`` node label overrides the inference (PCIe boards).
    """
    label = ctx.node.labels.get("nvswitch")
    if label is not None:
        return label.lower() in ("true", "yes", "1")
    if st.nvswitch or st.sw_mng:
        return True
    return profile_of(ctx).nvswitch_fabric_manager and ctx.node.gpu_count == 8


def upstream(version: str) -> str:
    """``1:580.95.05-0ubuntu1`` -> ``580.95.05``; ``580.95.05-1.el9`` -> ``580.95.05``."""
    v = version.split(":", 1)[-1]
    return v.split("-", 1)[0]


def install(st: StackState, packages: Sequence[str], desc: str) -> Shell:
    if st.family == "rhel":
        return Shell.cmd("dnf", "install", "-y", *packages, sudo=True, timeout=3600, description=desc)
    return Shell.cmd(
        "apt-get", "install", "-y", "--no-install-recommends",
        "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
        *packages, sudo=True, env=APT_ENV, timeout=3600, description=desc,
    )


def apt_update(desc: str = "apt-get update") -> Shell:
    return Shell.cmd("apt-get", "update", sudo=True, env=APT_ENV, timeout=600, description=desc)


def hold(st: StackState, names: Iterable[str]) -> list[Shell]:
    """Pin what we installed: ``apt-mark hold`` / ``dnf versionlock add``."""
    todo = sorted({n for n in names if n not in st.held})
    if not todo:
        return []
    if st.family == "rhel":
        cmds = []
        if not st.has("python3-dnf-plugin-versionlock"):
            cmds.append(install(st, ["python3-dnf-plugin-versionlock"], "install dnf versionlock"))
        cmds.append(Shell.cmd("dnf", "versionlock", "add", *todo, sudo=True, description=f"versionlock {' '.join(todo)}"))
        return cmds
    return [Shell.cmd("apt-mark", "hold", *todo, sudo=True, description=f"apt-mark hold {' '.join(todo)}")]


def unhold(st: StackState, names: Iterable[str]) -> list[Shell]:
    todo = sorted(n for n in names if n in st.held)
    if not todo:
        return []
    if st.family == "rhel":
        return [Shell.cmd("dnf", "versionlock", "delete", *todo, sudo=True)]
    return [Shell.cmd("apt-mark", "unhold", *todo, sudo=True, description=f"apt-mark unhold {' '.join(todo)}")]


def headers_missing(st: StackState) -> list[str]:
    """Headers for the running kernel (DKMS builds against them). A host without a module tree
    for its running kernel (``/lib/modules/<uname -r>`` absent: a container, as in the lab) has
    nothing to build against and gets none."""
    if not st.module_tree:
        return []
    if st.family == "rhel":
        return [p for p in ("kernel-devel-matched", "kernel-headers") if not st.has(p)]
    name = f"linux-headers-{st.kernel}"
    return [] if st.has(name) else [name]


def debian_contrib_command(st: StackState) -> Shell | None:
    """Debian 12 needs ``contrib`` for the CUDA repository's driver packages."""
    if st.os_id != "debian":
        return None
    if any("contrib" in ln for ln in st.apt_sources if ("debian" in ln or ln.startswith("Components:"))):
        return None
    script = (
        "set -e; if [ -f /etc/apt/sources.list ]; then "
        "sed -i -E '/^deb .*debian/{/ contrib/!s/ main( |$)/ main contrib\\1/}' /etc/apt/sources.list; fi; "
        "for f in /etc/apt/sources.list.d/*.sources; do [ -f \"$f\" ] || continue; "
        "sed -i -E '/^Components:/{/ contrib/!s/ main( |$)/ main contrib\\1/}' \"$f\"; done"
    )
    return Shell.sh(script, sudo=True, description="enable the Debian contrib component")
