"""Preflight checks of the fabric between the nodes of a replica, as pure functions of facts:
the NCCL/Gloo interface (the route to the head), host names, MTU, argv parity, RDMA (ports, link
layer, RoCE v2 GID index, NCCL_IB_HCA) and the NCCL all-reduce gate.

Each returns ``Problem``s naming the node, the cause and the fix (see tasks/preflight.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from glm5cluster.facts.nccl_probe import ProbeRun
from glm5cluster.facts.network import Interfaces, Route
from glm5cluster.facts.pcie import Pcie
from glm5cluster.facts.rdma import Rdma
from glm5cluster.tasks.preflight import Problem


def nccl_interface(host: str, head: str, head_address: str, route: Route, ifaces: Interfaces,
                   pinned: str | None) -> tuple[str | None, list[Problem]]:
    """The interface this node uses to reach the head's cluster address, and problems.

    Unpinned, it is what the kernel routes on (exported as NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME:
    NCCL otherwise picks the first non-loopback interface, often docker0 or a management NIC).
    A pinned interface must exist and be the one the route uses.
    """
    if pinned is not None and ifaces.by_name(pinned) is None:
        names = ", ".join(i.name for i in ifaces.interfaces) or "none"
        return None, [Problem(host, f"pinned interface {pinned} does not exist on {host} (it has: {names})",
                              f"set hosts[{host}].interface to one of its interfaces, or unset it")]
    if route.error or not route.device:
        return pinned, [Problem(host, f"no route to the head {head} at {head_address}: {route.error or 'none'}",
                                "add a route to the cluster network on this node, or fix hosts[].cluster_address")]
    dev = route.device
    if dev == "lo":  # the head itself: the interface that carries its cluster address
        carrier = ifaces.with_address(head_address)
        dev = carrier.name if carrier else dev
    if pinned is not None and pinned != dev:
        return pinned, [Problem(host, f"traffic to the head {head} ({head_address}) leaves through {dev}, "
                                f"but NCCL/Gloo are pinned to {pinned}",
                                f"fix the route on {host} (ip route get {head_address}) or set its interface to {dev}")]
    return dev, []


def check_route_subnet(host: str, head: str, head_address: str, route: Route, ifaces: Interfaces,
                       want: str | None) -> list[Problem]:
    """A node whose route to the head goes through an interface other than its own cluster
    interface (the one carrying its cluster address) sends NCCL over the wrong network."""
    if want is None or not route.device or route.device in ("lo", want):
        return []
    return [Problem(host, f"the route to the head {head} ({head_address}) leaves through {route.device}, "
                    f"not the cluster interface {want}",
                    f"put {host}'s cluster address on the head's network, or add a route "
                    f"(ip route add {head_address} dev {want})")]


def check_hostnames(names: Mapping[str, str]) -> list[Problem]:
    """Host names unique within a replica (NCCL, Gloo and SGLang's peer tables key on them)."""
    seen: dict[str, str] = {}
    out = []
    for host, name in names.items():
        if name in seen:
            out.append(Problem(host, f"host name {name!r} is also the host name of {seen[name]}",
                               f"give {host} a unique host name (hostnamectl set-hostname)"))
        else:
            seen[name] = host
    return out


def check_mtu(mtus: Mapping[str, int | None], ifaces: Mapping[str, str | None]) -> list[Problem]:
    """The NCCL interface has the same MTU on every node (a mismatch drops large frames silently)."""
    known = {h: m for h, m in mtus.items() if m}
    if len(set(known.values())) <= 1:
        return []
    counts: dict[int, int] = {}
    for m in known.values():
        counts[m] = counts.get(m, 0) + 1
    common = max(counts, key=lambda m: counts[m])
    listing = ", ".join(f"{h} {ifaces.get(h)} {m}" for h, m in known.items())
    return [Problem(h, f"MTU {m} on {ifaces.get(h)} differs from the replica's {common} ({listing})",
                    f"set the same MTU on every node's cluster interface (ip link set {ifaces.get(h)} mtu {common})")
            for h, m in known.items() if m != common]


def argv_without_rank(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--node-rank":
            skip = True
            continue
        if a.startswith("--node-rank="):
            continue
        out.append(a)
    return out


def check_argv_parity(argvs: Mapping[str, Sequence[str]]) -> list[Problem]:
    """Every rank's server argv is identical except --node-rank (a differing --tp-size,
    --dist-init-addr or model path hangs the rendezvous)."""
    hosts = list(argvs)
    if len(hosts) < 2:
        return []
    ref = argv_without_rank(argvs[hosts[0]])
    out = []
    for h in hosts[1:]:
        mine = argv_without_rank(argvs[h])
        if mine != ref:
            diff = next((f"{a!r} vs {b!r}" for a, b in zip(ref, mine, strict=False) if a != b),
                        f"{len(ref)} vs {len(mine)} arguments")
            out.append(Problem(h, f"server argv differs from rank 0's beyond --node-rank: {diff}",
                               "render every rank from the same inventory (no per-host extra_args)"))
    return out


@dataclass(frozen=True)
class RdmaVerdict:
    problems: list[Problem]
    env: dict[str, str]  # what to export for this node (NCCL_IB_GID_INDEX)
    nics: int  # active ports at the highest rate
    rate_gbit: int
    summary: str


def check_rdma(host: str, rdma: Rdma, env: Mapping[str, str]) -> RdmaVerdict:
    """Ports ACTIVE, link layer, RoCE v2 GID index, NCCL_IB_HCA naming real devices."""
    if not rdma.present:
        return RdmaVerdict([], {}, 0, 0, "no RDMA adapters (NCCL over TCP sockets)")
    out: list[Problem] = []
    devices = rdma.devices()
    hca = env.get("NCCL_IB_HCA", "")
    wanted = _hca_names(hca)
    unknown = [d for d in wanted if d not in devices]
    if unknown:
        out.append(Problem(host, f"NCCL_IB_HCA names {', '.join(unknown)}, not on {host} (it has {', '.join(devices)})",
                           "set serving.env.NCCL_IB_HCA to devices every node has (ibstat lists them)"))
    used = [p for p in rdma.ports if not wanted or p.device in wanted]
    down = [p for p in used if not p.active]
    if down and (wanted or len(down) < len(used)):
        out.append(Problem(host, "RDMA port(s) not ACTIVE: " + ", ".join(f"{p.device}/{p.port} {p.state}"
                                                                       for p in down),
                           "check cables/switch (ibstat); or exclude them with serving.env.NCCL_IB_HCA"))
    active = [p for p in used if p.active]
    rate = max((p.rate_gbit for p in active), default=0)
    fast = [p for p in active if p.rate_gbit == rate]
    out_env: dict[str, str] = {}
    roce = [p for p in fast if p.link_layer.lower() == "ethernet"]
    if roce:
        if not rdma.gids:
            note = "; RoCE GIDs unknown (show_gids missing)"
        else:
            idx = {p.device: rdma.roce_v2_index(p.device) for p in roce}
            missing = [d for d, i in idx.items() if i is None]
            if missing:
                out.append(Problem(host, f"no RoCE v2 GID with an IPv4 address on {', '.join(missing)}",
                                   "give the NIC's netdev an IPv4 address on the RDMA network (show_gids)"))
            found = sorted({i for i in idx.values() if i is not None})
            pinned = env.get("NCCL_IB_GID_INDEX")
            if pinned is not None and found and (not pinned.isdigit() or int(pinned) not in found):
                out.append(Problem(host, f"NCCL_IB_GID_INDEX={pinned} is not a RoCE v2 GID here "
                                   f"(RoCE v2 at index {', '.join(map(str, found))})",
                                   f"set NCCL_IB_GID_INDEX to {found[0]} (or unset it: preflight sets it per node)"))
            elif pinned is None and len(found) == 1:
                out_env["NCCL_IB_GID_INDEX"] = str(found[0])
            note = f"; RoCE v2 GID index {', '.join(map(str, found)) or '-'}"
    else:
        note = ""
    layer = "/".join(sorted({p.link_layer for p in fast})) or "-"
    if not rdma.dev_infiniband and active:
        out.append(Problem(host, "/dev/infiniband is missing although HCAs are present",
                           "load the RDMA kernel modules (ib_uverbs, rdma_ucm)"))
    summary = f"{len(fast)} x {rate}G {layer} active" + note
    return RdmaVerdict(out, out_env, len(fast), rate, summary)


def check_acs(host: str, pcie: Pcie) -> tuple[list[Problem], str]:
    """(problems, note): ACS enabled on a PCIe switch port (``lspci -vvv`` ``ACSCtl:`` bits) sends
    GPU/NIC peer-to-peer traffic through the CPU root complex (NCCL's troubleshooting guide:
    disable it on bare metal). Root ports are left alone (P2P across them goes through the root
    complex anyway)."""
    if not pcie.available:
        return [], "PCIe ACS not checked (no lspci: apt-get install pciutils)"
    switch = [b for b in pcie.bridges if b.switch_port]
    on = [b for b in switch if b.acs_on]
    if on:
        listing = ", ".join(f"{b.address} ({' '.join(f + '+' for f in b.acs_on)})" for b in on[:4])
        more = f" and {len(on) - 4} more" if len(on) > 4 else ""
        return [Problem(host, f"PCIe ACS is enabled on {len(on)} PCIe switch port(s) of {host}: {listing}{more}; "
                        "GPU and NIC peer-to-peer traffic is redirected through the CPU root complex",
                        f"disable ACS on the switch ports at every boot (setpci -s <port> ECAP_ACS+0x6.w=0000 "
                        f"on {host}, or the BIOS's ACS option); keep it only in VMs")], ""
    if any(b.denied for b in pcie.bridges) and not any(b.acs_ctl is not None for b in pcie.bridges):
        return [], "PCIe ACS not readable (lspci needs root)"
    return [], f"PCIe ACS off on {len(switch)} switch port(s)" if switch else "no PCIe switch ports"


def _hca_names(spec: str) -> list[str]:
    """NCCL_IB_HCA: ``mlx5_0,mlx5_1:1``, optional ``^`` (exclude) or ``=`` (exact) prefix."""
    spec = spec.strip()
    if not spec or spec.startswith("^"):
        return []
    return [p.split(":")[0] for p in spec.lstrip("=").split(",") if p.strip()]


# ---- the NCCL all-reduce gate --------------------------------------------------------------------
@dataclass(frozen=True)
class GateVerdict:
    problems: list[Problem]
    global_busbw: float | None
    slowest: tuple[str, float] | None  # host, local busbw
    summary: str


# where a rank that never joined was stuck (its last stage mark), and what to do about it
_STUCK = {
    "device": ("its GPU never answered (torch.cuda.set_device did not return)",
               "check nvidia-smi, the driver and the fabric manager on {h}; a GPU that hangs here needs a reset"),
    "reach": ("it could not open TCP to node 0's probe port",
              "check TCP from {h} to node 0's probe port and the NCCL/Gloo interface; "
              "NCCL_DEBUG=INFO names the socket that fails"),
}
_STUCK_DEFAULT = ("", "check TCP from {h} to node 0's probe port and the NCCL/Gloo interface; "
                  "NCCL_DEBUG=INFO names the socket that fails")


def _judge_hang(runs: Mapping[str, ProbeRun | None], hosts: Sequence[str], timed_out: list[str],
                timeout: float) -> list[Problem]:
    """A probe killed at its timeout: name the nodes whose ranks never got to NCCL's init (and
    where they were stuck); when every node got there, the group itself did not form."""
    def joined(r: ProbeRun | None) -> bool:
        return r is not None and bool(r.init_s or (r.reached and r.stuck_at not in _STUCK))

    came = [h for h in hosts if joined(runs.get(h))]
    missing = [h for h in hosts if h not in came]
    out: list[Problem] = []
    for h in missing:
        r = runs.get(h)
        cause, fix = _STUCK.get(r.stuck_at or "", _STUCK_DEFAULT) if r is not None else _STUCK_DEFAULT
        out.append(Problem(h, f"{h} never joined the NCCL group within {timeout:g} s"
                           + (f": {cause}" if cause else "")
                           + f" (reached node 0's rendezvous: {', '.join(came) or 'none'})",
                           fix.format(h=h)))
    if not missing:
        for h in timed_out:
            out.append(Problem(h, f"every node reached node 0's rendezvous ({', '.join(came)}) but the NCCL "
                               f"group did not form within {timeout:g} s",
                               "NCCL's own connections between the nodes fail: open NCCL's ports between the "
                               "nodes (not only the dist-init port), check NCCL_SOCKET_IFNAME and NCCL_IB_HCA; "
                               "NCCL_DEBUG=INFO names the socket that fails"))
    return out


def judge_probe(runs: Mapping[str, ProbeRun | None], hosts: Sequence[str], min_global: float | None,
                min_local: float | None, timeout: float) -> GateVerdict:
    """``runs``: each node's parsed probe output (None: nothing came back). Node 0 reports the
    global phase; every node its local phase."""
    out: list[Problem] = []
    for h in hosts:
        run = runs.get(h)
        if run is None or (not run.done and not run.errors):
            said = f": {run.last_other}" if run is not None and run.last_other else ""
            out.append(Problem(h, f"the NCCL probe gave no answer on {h}{said}",
                               "check the runtime's python/torch on this node (glm5cluster exec ...)"))
            continue
        for e in run.errors:
            if run.timed_out:  # what a worker says while the others are killed is the kill's echo
                break
            out.append(Problem(h, f"NCCL probe rank {e.rank} failed at {e.stage}: {e.message[:300]}",
                               "see NCCL_DEBUG=INFO output: a blocked port, a wrong interface or a driver fault"))
    timed_out = [h for h in hosts if (r := runs.get(h)) is not None and r.timed_out]
    if timed_out:
        out.extend(_judge_hang(runs, hosts, timed_out, timeout))
    head = runs.get(hosts[0])
    g = head.best("global") if head else None
    gbw = g.busbw_gbps if g and len(hosts) > 1 else None
    if gbw is not None and min_global is not None and gbw < min_global:
        out.append(Problem(hosts[0], f"all-reduce busbw across the replica {gbw:.1f} GB/s is below "
                           f"{min_global:.1f} GB/s (at {g.size >> 20 if g else 0} MiB)",
                           "check the RDMA NICs (ibstat), NCCL_IB_HCA, GPUDirect and NCCL_DEBUG=INFO's chosen "
                           "transport (NET/IB vs NET/Socket); preflight.min_busbw_gbps tunes the gate"))
    locals_ = {h: b.busbw_gbps for h in hosts if (r := runs.get(h)) and (b := r.best("local")) and b.ranks > 1}
    slowest = min(locals_.items(), key=lambda kv: kv[1]) if locals_ else None
    if min_local is not None:
        for h, bw in locals_.items():
            if bw < min_local:
                out.append(Problem(h, f"all-reduce busbw among {h}'s own GPUs {bw:.1f} GB/s is below "
                                   f"{min_local:.1f} GB/s",
                                   "check NVLink (nvidia-smi nvlink -s), the fabric manager and GPU clocks; "
                                   "preflight.min_local_busbw_gbps tunes the gate"))
    bits = []
    if gbw is not None:
        bits.append(f"busbw {gbw:.1f} GB/s across {len(hosts)} nodes"
                    + (f" (min {min_global:.1f})" if min_global else ""))
    if slowest:
        bits.append(f"slowest node {slowest[0]} local {slowest[1]:.1f} GB/s")
    if head and head.init_s:
        bits.append(f"init {max(head.init_s):.2f} s")
    return GateVerdict(out, gbw, slowest, "; ".join(bits) or "no bandwidth figure (one rank)")
