"""When a host must reboot, and whether its GPU stack is healthy afterwards (pure functions + the
``gpu.verify`` task). The reboot itself is cross-host work: ``engine/procedures/reboot.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from glm5cluster.facts.packages import StackFact, StackState
from glm5cluster.tasks import gpu_stack as gs
from glm5cluster.tasks.base import Fail, HostContext, NoOp, Outcome, Params, Skip, Task
from glm5cluster.tasks.nvidia import installed_driver_version


def loaded_driver(st: StackState) -> str | None:
    """The kernel module's version: /proc/driver/nvidia/version, else what nvidia-smi reports."""
    return st.loaded_driver or (st.smi_driver if st.smi_ok else None)


def reboot_reason(st: StackState, vendor: str, branch: str) -> str | None:
    """Why this host needs a reboot, or None."""
    if vendor == "nvidia":
        if st.smi_mismatch:
            return "nvidia-smi: Driver/library version mismatch"
        installed = installed_driver_version(st, branch)
        loaded = loaded_driver(st)
        if installed and loaded and installed != loaded:
            return f"driver {installed} installed but {loaded} loaded"
        if installed and not loaded:
            return f"driver {installed} installed but no NVIDIA kernel module loaded"
    elif vendor == "amd" and st.has("amdgpu-dkms") and not st.amd_kfd:
        return "amdgpu-dkms installed but /dev/kfd absent (module not loaded)"
    if st.reboot_flag:
        return "/var/run/reboot-required is present"
    return None


def health_problems(st: StackState, ctx: Any, branch: str) -> list[str]:
    """Everything wrong with a host's GPU stack after install (empty = verified)."""
    node = ctx.node
    out: list[str] = []
    profile = gs.profile_of(ctx)
    if profile.vendor == "amd":
        if not st.amd_kfd:
            out.append("/dev/kfd missing (amdgpu not loaded)")
        if st.amd_agents and st.amd_agents != node.gpu_count:
            out.append(f"rocminfo lists {st.amd_agents} Instinct GPUs, inventory says {node.gpu_count}")
        return out
    if st.smi_mismatch:
        return ["nvidia-smi: Driver/library version mismatch (reboot needed)"]
    if not st.smi_ok:
        return ["nvidia-smi lists no GPUs"]
    name, min_mib = node.gpu_kind.value, profile.min_memory_mib
    if len(st.gpus) != node.gpu_count:
        out.append(f"{len(st.gpus)} GPUs found, inventory says {node.gpu_count} x {node.gpu_kind.value}")
    wrong = sorted({g.name for g in st.gpus if name not in g.name})
    if wrong:
        out.append(f"GPU kind {', '.join(wrong)} is not {node.gpu_kind.value}")
    small = [g for g in st.gpus if g.memory_mib < min_mib]
    if small:
        out.append(f"GPU {small[0].index} has {small[0].memory_mib} MiB, {node.gpu_kind.value} needs >= {min_mib}")
    installed = installed_driver_version(st, branch)
    loaded = loaded_driver(st)
    if installed and loaded and installed != loaded:
        out.append(f"loaded driver {loaded} != installed {installed} (reboot needed)")
    if loaded and not loaded.startswith(f"{branch}."):
        out.append(f"driver {loaded} is not branch {branch}")
    if profile.open_kernel_modules_required and st.loaded_open is False:
        out.append(f"proprietary kernel modules loaded on {node.gpu_kind.value} (needs the open modules)")
    if not all(g.persistence for g in st.gpus):
        out.append("persistence mode is Disabled on some GPUs")
    if gs.has_nvswitch(ctx, st) and not st.active("nvidia-fabricmanager"):
        out.append("nvidia-fabricmanager is not active on an NVSwitch board")
    out += list(st.health_problems)
    return out


def driver_parity(versions: Mapping[str, str | None], replicas: Sequence[Sequence[str]]) -> list[str]:
    """One line per replica whose nodes run different driver versions."""
    out = []
    for i, members in enumerate(replicas):
        seen = {n: versions.get(n) for n in members}
        if len(set(seen.values())) > 1:
            detail = ", ".join(f"{n}={v or 'none'}" for n, v in sorted(seen.items()))
            out.append(f"replica {i}: driver versions differ ({detail})")
    return out


class VerifyParams(Params):
    driver_branch: str | None = None


class GpuVerify(Task[VerifyParams]):
    """Check count, kind, memory, loaded == installed driver, persistence, fabric manager, ECC."""

    name = "gpu.verify"
    Params = VerifyParams

    def facts(self, params: VerifyParams, ctx: HostContext) -> Mapping[str, StackFact]:
        return {"stack": StackFact()}

    def plan(self, params: VerifyParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        st: StackState = facts["stack"]
        br = params.driver_branch or gs.stack_of(ctx).nvidia.driver_branch
        vendor = gs.vendor_of(ctx)
        if vendor not in ("nvidia", "amd"):
            return Skip("no GPU vendor")
        why = reboot_reason(st, vendor, br)
        if why:
            return Fail(f"reboot pending: {why}", "run again with --allow-reboot, or reboot the host")
        problems = health_problems(st, ctx, br)
        if problems:
            return Fail("; ".join(problems), "each check and its fix: docs/gpu-checks.md; see the GPUs with "
                        "`glm5cluster exec INV --limit HOST -- nvidia-smi -q`")
        if vendor == "amd":
            return NoOp(f"{ctx.node.gpu_count} x {ctx.node.gpu_kind.value} verified (kfd present)")
        return NoOp(f"{len(st.gpus)} x {st.gpus[0].name} verified, driver {loaded_driver(st)}")
