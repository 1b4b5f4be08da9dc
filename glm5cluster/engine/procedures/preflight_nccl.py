"""Preflight's ``nccl`` gate of one replica: the real NCCL probe (tasks/agents/nccl_probe.py) on
every GPU of every node, with the runtime's own interpreter (venv python, or the same image with
the server's GPU/IPC/shm/memlock flags), the rank's NCCL/Gloo environment, joined at node 0's
cluster address on ``preflight.nccl_port`` (the dist-init scheme, another port). The probe bounds
itself with ``--timeout``; the controller's command timeout adds a margin on top.

Judged by ``tasks.preflight_fabric.judge_probe`` against the catalog/NIC expectation (or the
inventory's minimums).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from glm5cluster.commands import Shell, Upload
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.facts.nccl_probe import ProbeRun, parse_probe
from glm5cluster.model.catalog import LOCAL_BUSBW_GBPS, expected_global_busbw
from glm5cluster.model.inventory import Inventory
from glm5cluster.render import node_env
from glm5cluster.runtime import for_inventory
from glm5cluster.tasks import agents
from glm5cluster.tasks import preflight_fabric as F
from glm5cluster.tasks.node_fabric import RDMA_DEVICE
from glm5cluster.topology import RankAssignment, Replica

PROBE_PATH = "/var/lib/glm5cluster/nccl_probe.py"


def probe_port(inv: Inventory) -> int:
    return inv.preflight.nccl_port or inv.serving.dist_init_port + 1000


def master(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def probe_argv(inv: Inventory, rep: Replica, rank: RankAssignment, env: Mapping[str, str],
               devices: tuple[str, ...] = ()) -> list[str]:
    """The probe's command on one node, inside the runtime the server will use."""
    p = inv.preflight
    args = ["--master", master(rep.head.node.cluster_address, probe_port(inv)), "--nnodes", str(rep.nnodes),
            "--node-rank", str(rank.node_rank), "--gpus", str(rank.node.gpu_count), "--sizes", p.nccl_sizes,
            "--timeout", f"{p.nccl_timeout:g}"]
    return [*runtime_python(inv, rep, env, (f"{PROBE_PATH}:{PROBE_PATH}:ro",), devices), PROBE_PATH, *args]


def runtime_python(inv: Inventory, rep: Replica, env: Mapping[str, str] | None = None,
                   mounts: tuple[str, ...] = (), devices: tuple[str, ...] = ()) -> list[str]:
    """argv of the python that will run SGLang: the venv's, or the server's image run once with
    the server's device, network, IPC, shm and ulimit flags (``runtime/container.py`` run_argv;
    ``devices``: /dev/infiniband on an RDMA node, as the launch passes it)."""
    rt, s = for_inventory(inv), inv.serving
    gpu = rep.deployment.gpu
    return rt.python_as_service(rt.image(gpu), gpus=gpu.vendor, shm_size=s.shm_size,
                                memlock_unlimited=s.memlock_unlimited, env=env, mounts=mounts, devices=devices)


def thresholds(inv: Inventory, rep: Replica, nics: Mapping[str, tuple[int, int]]) -> tuple[float | None, float | None]:
    """(min global busbw, min local busbw) in GB/s: the inventory's minimums, else the catalog's
    (local) and NIC count x speed (global, the weakest node's NICs) times ``fail_below_pct``."""
    p = inv.preflight
    frac = p.fail_below_pct / 100
    gpu = rep.deployment.gpu
    local = p.min_local_busbw_gbps
    if local is None and (ref := LOCAL_BUSBW_GBPS.get((gpu.kind, rep.head.node.gpu_count))):
        local = ref * frac
    glob = p.min_busbw_gbps
    if glob is None and rep.nnodes > 1:
        if p.nics is not None and p.nic_gbps is not None:
            exp = expected_global_busbw(p.nics, p.nic_gbps)
        else:
            found = [expected_global_busbw(n, r) for n, r in nics.values()]
            exp = min((e for e in found if e is not None), default=None) if all(found) else None
        glob = exp * frac if exp else None
    return glob, local


def run_gate(ctx: ClusterContext, rep: Replica, extra_env: Mapping[str, Mapping[str, str]],
             nics: Mapping[str, tuple[int, int]]) -> F.GateVerdict:
    inv = ctx.inventory
    hosts = [r.node.name for r in rep.ranks]
    source = agents.source("nccl_probe").encode()
    margin = inv.preflight.nccl_timeout + 60

    def one(host: str) -> ProbeRun:
        rank = next(r for r in rep.ranks if r.node.name == host)
        put = ctx.put(host, Upload(PROBE_PATH, source, 0o644, "root", "root", sudo=True,
                                   description="NCCL probe"))
        if not put.ok:
            raise RuntimeError(f"could not upload the NCCL probe: {put.tail(2)}")
        env = {**node_env(inv, rank), **extra_env.get(host, {})}
        rdma = nics.get(host, (0, 0))[0] > 0  # active HCAs: the container gets them, as at launch
        argv = probe_argv(inv, rep, rank, env, (RDMA_DEVICE,) if rdma else ())
        res = ctx.run(host, Shell.sh(shlex.join(argv) + " 2>&1", sudo=True, timeout=margin,
                                     description=f"NCCL probe, node {rank.node_rank}"))
        return parse_probe(res.stdout)

    runs: dict[str, ProbeRun | None] = {}
    for h, hr in ctx.fan_out(one, hosts).items():
        runs[h] = hr.value if hr.ok else None
    glob, local = thresholds(inv, rep, nics)
    return F.judge_probe(runs, hosts, glob, local, inv.preflight.nccl_timeout)
