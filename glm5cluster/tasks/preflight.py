"""Preflight checks as pure functions of gathered facts (used by the ``preflight`` procedure).

Each check returns ``Problem``s naming the host, what is wrong and the fix. Parity checks take
the facts of every rank of one replica.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from glm5cluster.facts.gpu_types import GpuState
from glm5cluster.facts.network import Interfaces
from glm5cluster.facts.serving import PortHolder, WeightsStamp
from glm5cluster.runtime.survey import Survey

MIN_SHM = 1 << 30  # below this a venv runtime's NCCL shared-memory transport is likely to fail


@dataclass(frozen=True)
class Problem:
    host: str
    message: str
    fix: str


def check_interface(host: str, address: str, interface: str | None, ifaces: Interfaces) -> list[Problem]:
    """The cluster interface exists, is up, and carries the host's cluster address."""
    if interface is None:
        carrier = ifaces.with_address(address)
        if carrier is None:
            return [Problem(host, f"no interface carries the cluster address {address}",
                            "set hosts[].cluster_address to an address of this host")]
        return []
    iface = ifaces.by_name(interface)
    if iface is None:
        names = ", ".join(i.name for i in ifaces.interfaces) or "none"
        return [Problem(host, f"cluster interface {interface} does not exist (interfaces: {names})",
                        "set hosts[].interface / cluster.interface to the cluster-network NIC")]
    out = []
    if not iface.up:
        out.append(Problem(host, f"cluster interface {interface} is down", f"ip link set {interface} up"))
    if not any(a.split("/")[0] == address for a in iface.addresses):
        have = ", ".join(iface.addresses) or "no address"
        out.append(Problem(host, f"cluster interface {interface} does not carry {address} (it has {have})",
                           "fix hosts[].cluster_address or hosts[].interface so they agree"))
    return out


def check_ports(host: str, ports: Sequence[int], holders: Sequence[PortHolder], ours: Survey | None) -> list[Problem]:
    """Each port free, or held by a service of this cluster (whichever runtime or replica index
    started it: the launch replaces it)."""
    out = []
    for port in ports:
        for h in holders:
            if h.port == port and (ours is None or ours.owner_of(h.cgroup) is None):
                who = f"{h.process} (pid {h.pid})" if h.pid else "another process"
                out.append(Problem(host, f"TCP port {port} is already in use by {who}",
                                   f"stop it, or pick other serving.http_port / serving.dist_init_port "
                                   f"(ss -ltnp 'sport = :{port}' on {host})"))
                break
    return out


def port_notes(ports: Sequence[int], holders: Sequence[PortHolder], ours: Survey | None) -> list[str]:
    """Ports held by this cluster's own services (fine: the launch replaces them)."""
    notes = []
    for port in ports:
        for h in holders:
            owner = ours.owner_of(h.cgroup) if ours is not None and h.port == port else None
            if owner is not None:
                notes.append(f"port {port} held by this cluster's {owner.name}")
                break
    return notes


def check_gpu_parity(hosts: Sequence[str], states: Mapping[str, GpuState | None], kind: str,
                     count: int) -> list[Problem]:
    """Every rank of a replica: working driver, GPUs of the replica's kind, enough of them, and
    the same driver version everywhere."""
    out = []
    drivers: dict[str, str] = {}
    for host in hosts:
        st = states.get(host)
        if st is None or not st.ok:
            detail = st.detail if st is not None else "not gathered"
            out.append(Problem(host, f"GPU driver not usable: {st.status.value if st else 'unknown'}: {detail}",
                               "run `glm5cluster up` with the GPU stack steps (or fix the driver) on this host"))
            continue
        kinds = {g.kind.value if g.kind else g.name for g in st.gpus}
        if kinds != {kind}:
            out.append(Problem(host, f"GPUs are {', '.join(sorted(kinds)) or 'none'}, the replica needs {kind}",
                               "fix gpu.kind for this host in the inventory, or use matching hosts"))
        if st.count < count:
            out.append(Problem(host, f"{st.count} GPUs visible, the replica needs {count}",
                               "check nvidia-smi / amd-smi on this host (a GPU fell off the bus?)"))
        drivers[host] = st.driver_version or "?"
    if len(set(drivers.values())) > 1:
        listing = ", ".join(f"{h} {v}" for h, v in drivers.items())
        odd = _odd_one(drivers)
        out.append(Problem(odd, f"driver versions differ within the replica: {listing}",
                           "install the same driver on every node of a replica (glm5cluster up does)"))
    return out


def check_runtime_parity(hosts: Sequence[str], versions: Mapping[str, str], want_version: str,
                         image: str | None) -> list[Problem]:
    """``versions``: what the runtime found per host (the image id when the runtime runs an
    ``image``, else the SGLang version in the venv)."""
    out = []
    for host in hosts:
        v = versions.get(host, "")
        if not v:
            what = f"image {image} is not present" if image else "sglang is not installed in the venv"
            out.append(Problem(host, what, "run the SGLang runtime step (glm5cluster up) on this host"))
        elif not image and v != want_version:
            out.append(Problem(host, f"sglang {v} installed, the inventory pins {want_version}",
                               "re-run `glm5cluster up` to install the pinned version"))
    present = {h: v for h, v in versions.items() if v and h in hosts}
    if len(set(present.values())) > 1:
        odd = _odd_one(present)
        out.append(Problem(odd, "SGLang differs within the replica: "
                           + ", ".join(f"{h} {v[:19]}" for h, v in present.items()),
                           "every rank must run the same SGLang build"))
    return out


def check_weights(hosts: Sequence[str], stamps: Mapping[str, WeightsStamp], repo: str,
                  revision: str, pinned: bool, weights_dir: str) -> list[Problem]:
    out = []
    commits: dict[str, str] = {}
    for host in hosts:
        s = stamps.get(host)
        if s is None or not s.present:
            out.append(Problem(host, f"no verified weights at {weights_dir} (no manifest stamp)",
                               "run the weights step (glm5cluster up stages and verifies them)"))
            continue
        if s.error:
            out.append(Problem(host, f"weights stamp unreadable: {s.error}", "re-run `glm5cluster up` to restage"))
            continue
        if s.repo != repo:
            out.append(Problem(host, f"weights at {weights_dir} are {s.repo}, the inventory serves {repo}",
                               "point model.weights_dir elsewhere or restage"))
        if s.missing:
            more = f" (+{len(s.missing) - 3} more)" if len(s.missing) > 3 else ""
            out.append(Problem(host, f"{len(s.missing)} weight file(s) missing or truncated in {weights_dir}: "
                               + ", ".join(s.missing[:3]) + more,
                               "re-run `glm5cluster up`: the weights step refetches only what is missing"))
        if pinned and s.commit != revision:
            out.append(Problem(host, f"weights are revision {s.commit}, the inventory pins {revision}",
                               "re-run `glm5cluster up` to stage the pinned revision"))
        commits[host] = s.commit or "?"
    if len(set(commits.values())) > 1:
        out.append(Problem(_odd_one(commits), "model revision differs within the replica: "
                           + ", ".join(f"{h} {c[:12]}" for h, c in commits.items()),
                           "every rank must load the same revision: re-run the weights step"))
    return out


def check_shm(host: str, host_shm: bool, shm_size: int | None,
              memlock_unlimited: bool = True) -> tuple[list[Problem], str]:
    """(problems, note). A container runs with --ipc host --shm-size, so only a runtime with
    ``host_shm`` depends on the host's /dev/shm; memlock is unlimited through the unit or
    --ulimit unless ``serving.memlock_unlimited`` is false (nested-container sites; then RDMA
    is unavailable)."""
    memlock = ("warning: memlock left at the host's limit (serving.memlock_unlimited false): no RDMA"
               if not memlock_unlimited else "")
    if not host_shm:
        return [], "shm via --ipc host/--shm-size, " + (memlock or "memlock via --ulimit memlock=-1")
    note = memlock or "memlock unlimited via the unit (LimitMEMLOCK=infinity)"
    if shm_size is None:  # not measurable (df failed): say so, do not block
        return [], note + "; warning: could not measure /dev/shm (NCCL needs a large tmpfs there)"
    if shm_size < MIN_SHM:
        note += f"; warning: /dev/shm is only {shm_size >> 20} MiB"
    return [], note


def _odd_one(values: Mapping[str, str]) -> str:
    """The host whose value differs from the most common one (first host on a tie)."""
    counts: dict[str, int] = {}
    for v in values.values():
        counts[v] = counts.get(v, 0) + 1
    common = max(counts, key=lambda v: counts[v])
    return next((h for h, v in values.items() if v != common), next(iter(values)))
