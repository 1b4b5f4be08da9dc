"""Preflight's ``spec`` check, pure: the limits and versions inside the runtime that will run
SGLang, and GPUs free of foreign compute processes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from glm5cluster.facts.nvidia_health import FabricManager
from glm5cluster.facts.runtime_env import ComputeApp, RuntimeEnv
from glm5cluster.tasks.preflight import Problem

MIN_SHM = 1 << 30
MIN_NOFILE = 65536
VERSIONED = ("sglang", "torch", "transformers", "nvidia-nccl-cu12", "nvidia-nccl-cu13")


def check_runtime_env(host: str, env: RuntimeEnv, limits_in_spec: bool, memlock_unlimited: bool,
                      host_infiniband: bool) -> tuple[list[Problem], str]:
    """``limits_in_spec`` (``Runtime.limits_in_spec``): the python ran with the server's own
    limits and devices (the container spec), so memlock, nofile and /dev/infiniband are judged;
    otherwise (the venv python run directly: memlock/nofile are the unit's, set by
    LimitMEMLOCK/LimitNOFILE) only /dev/shm and versions are."""
    where = "in the container spec" if limits_in_spec else "for the venv runtime"
    if not env.ok:
        return [Problem(host, f"could not run the runtime's python {where}: {env.error}",
                        "run the SGLang runtime step (glm5cluster up), or check the image/venv")], ""
    out = []
    if limits_in_spec:
        if memlock_unlimited and env.memlock != -1:
            out.append(Problem(host, f"memlock is {env.memlock >> 10} KiB {where}, not unlimited",
                               "RDMA needs it: allow --ulimit memlock=-1 (CAP_SYS_RESOURCE for docker)"))
        if 0 <= env.nofile < MIN_NOFILE:
            out.append(Problem(host, f"nofile is {env.nofile} {where} (below {MIN_NOFILE})",
                               "raise docker's default-ulimits nofile (daemon.json) or the host's limit"))
        if host_infiniband and not env.dev_infiniband:
            out.append(Problem(host, f"/dev/infiniband is not visible {where}: NCCL falls back to TCP sockets",
                               "the container gets --device /dev/infiniband where the host has it: check the "
                               "image's runtime (docker run --device) and the RDMA modules (ib_uverbs)"))
    if 0 <= env.shm_bytes < MIN_SHM:
        out.append(Problem(host, f"/dev/shm is {env.shm_bytes >> 20} MiB {where} (NCCL needs >= 1 GiB)",
                           "raise serving.shm_size (docker) or the host's /dev/shm tmpfs (venv)"))
    lim = "unlimited" if env.memlock == -1 else f"{env.memlock >> 10} KiB"
    note = (f"memlock {lim}, nofile {env.nofile}, " if limits_in_spec else "") + \
        f"/dev/shm {env.shm_bytes >> 20} MiB; " + \
        ", ".join(f"{k.removeprefix('nvidia-')} {v}" for k, v in sorted(env.versions.items()))
    return out, note


def check_version_parity(hosts: Sequence[str], envs: Mapping[str, RuntimeEnv]) -> list[Problem]:
    """SGLang, torch, NCCL, transformers: the same on every node of a replica."""
    out = []
    for pkg in VERSIONED:
        seen = {h: envs[h].versions.get(pkg, "-") for h in hosts if h in envs and envs[h].ok}
        if len(set(seen.values())) > 1:
            counts: dict[str, int] = {}
            for v in seen.values():
                counts[v] = counts.get(v, 0) + 1
            common = max(counts, key=lambda v: counts[v])
            listing = ", ".join(f"{h} {v}" for h, v in seen.items())
            out += [Problem(h, f"{pkg} {v} differs from the replica's {common} ({listing})",
                            "every node must run the same build: re-run the SGLang runtime step (glm5cluster up)")
                    for h, v in seen.items() if v != common]
    return out


def check_fabric_manager(host: str, fm: FabricManager) -> tuple[list[Problem], str]:
    """NVSwitch boards (8-GPU HGX) need nvidia-fabricmanager running, or CUDA init fails
    (error 802, "system not yet initialized") and NVLink all-reduce never starts."""
    if fm.installed and fm.active == "active":
        return [], f"fabric manager active{' ' + fm.version if fm.version else ''}"
    what = "not installed" if not fm.installed else fm.active
    return [Problem(host, f"nvidia-fabricmanager is {what} on an NVSwitch board",
                    "run `glm5cluster up` (the gpu.fabric_manager step), or systemctl start nvidia-fabricmanager")], ""


def check_gpus_idle(host: str, apps: tuple[ComputeApp, ...] | None) -> tuple[list[Problem], str]:
    if apps is None:
        return [], "compute processes unknown (nvidia-smi --query-compute-apps unavailable)"
    if not apps:
        return [], "GPUs idle"
    listing = ", ".join(f"{a.name} (pid {a.pid}, {a.used_mib} MiB)" for a in apps[:4])
    return [Problem(host, f"GPUs are busy: {listing}",
                    f"stop those processes on {host} (nvidia-smi shows them) before launching")], ""
