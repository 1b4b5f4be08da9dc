"""The NCCL gate's command (runtime's own python / same image flags), thresholds, NCCL's default
interface pick, and the preflight table."""

from __future__ import annotations

import io
from pathlib import Path

from glm5cluster.cli.preflight_cmd import Row, print_table, rows_json
from glm5cluster.engine.procedures.preflight_nccl import (
    PROBE_PATH,
    probe_argv,
    probe_port,
    thresholds,
)
from glm5cluster.engine.procedures.preflight_net import nccl_default_interface
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.facts.network import Interface, Interfaces
from glm5cluster.model.inventory import PreflightSpec, Runtime
from glm5cluster.model.loader import load_inventory
from glm5cluster.topology import plan_topology

INVS = Path(__file__).resolve().parents[3] / "inventory"


def planned(name: str, **serving: object):  # type: ignore[no-untyped-def]
    loaded = load_inventory(INVS / name)
    inv = loaded.inventory
    if serving:
        inv = inv.model_copy(update={"serving": inv.serving.model_copy(update=serving)})
    topo = plan_topology(inv, loaded.nodes)
    return inv, topo.replicas[0]


def test_probe_runs_with_the_venv_python_and_the_rank_env() -> None:
    inv, rep = planned("h200-bf16.yaml")
    rank = rep.ranks[1]
    argv = probe_argv(inv, rep, rank, {"NCCL_SOCKET_IFNAME": "ib0", "NCCL_IB_GID_INDEX": "3"})
    assert argv[:3] == ["env", "NCCL_SOCKET_IFNAME=ib0", "NCCL_IB_GID_INDEX=3"]
    assert argv[3] == inv.serving.venv_path.rstrip("/") + "/bin/python" and argv[4] == PROBE_PATH
    i = argv.index("--master")
    assert argv[i + 1] == f"{rep.head.node.cluster_address}:{inv.serving.dist_init_port + 1000}"
    assert argv[argv.index("--node-rank") + 1] == "1" and argv[argv.index("--gpus") + 1] == "8"
    assert argv[argv.index("--nnodes") + 1] == str(rep.nnodes)


def test_probe_runs_in_the_servers_image_with_its_flags() -> None:
    inv, rep = planned("h200-bf16.yaml", runtime=Runtime.DOCKER)
    argv = probe_argv(inv, rep, rep.ranks[0], {"NCCL_SOCKET_IFNAME": "ib0"})
    joined = " ".join(argv)
    for flag in ("--gpus all", "--network host", "--ipc host", f"--shm-size {inv.serving.shm_size}",
                 "--ulimit memlock=-1", f"-v {PROBE_PATH}:{PROBE_PATH}:ro", "-e NCCL_SOCKET_IFNAME=ib0"):
        assert flag in joined, flag
    ep = argv.index("--entrypoint")
    assert argv[ep + 2].startswith("lmsysorg/sglang:") and argv[ep + 3] == PROBE_PATH
    assert "/dev/infiniband" not in joined
    rdma = probe_argv(inv, rep, rep.ranks[0], {}, ("/dev/infiniband",))  # an RDMA node, as at launch
    assert rdma[rdma.index("--device") + 1] == "/dev/infiniband" and rdma.index("--device") < rdma.index("--entrypoint")


def test_spec_container_gets_the_rdma_device_where_the_host_has_it() -> None:
    from glm5cluster.engine.procedures.preflight_nccl import runtime_python
    from glm5cluster.facts.runtime_env import RuntimeEnvFact

    inv, rep = planned("h200-bf16.yaml", runtime=Runtime.DOCKER)
    fact = RuntimeEnvFact([*runtime_python(inv, rep), "-c", "pass"],
                          [*runtime_python(inv, rep, devices=("/dev/infiniband",)), "-c", "pass"])
    cmd = fact.command()
    assert cmd.script is not None and cmd.sudo
    yes, _, no = cmd.script.partition("; else ")
    assert yes.startswith("if [ -d /dev/infiniband ]; then docker run") and "--device /dev/infiniband" in yes
    assert "--device /dev/infiniband" not in no
    venv_inv, venv_rep = planned("h200-bf16.yaml")
    venv = RuntimeEnvFact([*runtime_python(venv_inv, venv_rep), "-c", "pass"],
                          [*runtime_python(venv_inv, venv_rep, devices=("/dev/infiniband",)), "-c", "pass"])
    assert venv.command().script is None  # the venv python sees the host's devices anyway


def test_ipv6_master_in_brackets_and_pinned_port() -> None:
    inv, rep = planned("h200-fp8-2x4-ipv6.yaml")
    inv = inv.model_copy(update={"preflight": PreflightSpec(nccl_port=29600)})
    argv = probe_argv(inv, rep, rep.ranks[0], {})
    assert argv[argv.index("--master") + 1] == f"[{rep.head.node.cluster_address}]:29600"
    assert probe_port(inv) == 29600


def test_thresholds_from_catalog_nics_and_inventory() -> None:
    inv, rep = planned("h200-bf16.yaml")
    glob, local = thresholds(inv, rep, {h.node.name: (8, 400) for h in rep.ranks})
    assert local == 431.0 * 0.8 and glob is not None and abs(glob - 368.0 * 0.8) < 1e-9
    # the weakest node's NICs set the expectation; no RDMA anywhere: no global gate
    glob, _ = thresholds(inv, rep, {rep.ranks[0].node.name: (8, 400), rep.ranks[1].node.name: (4, 400)})
    assert glob is not None and abs(glob - 4 * 46 * 0.8) < 1e-9
    assert thresholds(inv, rep, {h.node.name: (0, 0) for h in rep.ranks})[0] is None
    pinned = inv.model_copy(update={"preflight": PreflightSpec(min_busbw_gbps=100, min_local_busbw_gbps=50,
                                                               nics=1, nic_gbps=100)})
    assert thresholds(pinned, rep, {}) == (100, 50)
    nic = inv.model_copy(update={"preflight": PreflightSpec(nics=4, nic_gbps=200, fail_below_pct=50)})
    assert thresholds(nic, rep, {})[0] == 4 * 24 * 0.5


def test_nccl_default_interface_skips_lo_and_docker_prefers_ib() -> None:
    lo = Interface("lo", True, 65536, ("127.0.0.1/8",))
    d0 = Interface("docker0", True, 1500, ("172.17.0.1/16",))
    eth = Interface("eth0", True, 1500, ("10.0.0.2/24",))
    ib = Interface("ib0", True, 4092, ("10.1.0.2/24",))
    assert nccl_default_interface(Interfaces((lo, d0, eth))) == "eth0"
    assert nccl_default_interface(Interfaces((lo, eth, ib))) == "ib0"
    assert nccl_default_interface(Interfaces((lo,))) is None


def test_table_and_json_per_check_per_node() -> None:
    rows = [Row("fabric", "node-1", StepResult(Status.OK, "replica 0 rank 0: fabric ok (NCCL/Gloo interface eth0)"), 1),
            Row("fabric", "node-2", StepResult(Status.FAILED, message="node-2: host name 'x' is also the host name of node-1",
                                               hint="give node-2 a unique host name"), 1)]
    out = io.StringIO()
    print_table("c", rows, 2.0, out)
    text = out.getvalue()
    assert "fabric  node-1  ok      NCCL/Gloo interface eth0" in text
    assert "fabric  node-2  FAILED  host name 'x' is also the host name of node-1" in text
    assert "fix:    give node-2 a unique host name" in text and "FAILED on node-2" in text
    j = rows_json("c", rows, 2.0)
    assert j["ok"] is False and j["results"][1]["fix"] == "give node-2 a unique host name"
