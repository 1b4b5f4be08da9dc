"""Fabric preflight checks (pure): interface from the route, host names, MTU, argv parity, RDMA,
the NCCL gate. RDMA and probe inputs are the real captures under tests/facts/."""

from __future__ import annotations

import json
from pathlib import Path

from glm5cluster.facts.nccl_probe import parse_probe, split_runs
from glm5cluster.facts.network import Interface, Interfaces, Route
from glm5cluster.facts.rdma import Rdma, parse_ibstat, parse_show_gids
from glm5cluster.model.catalog import LOCAL_BUSBW_GBPS, expected_global_busbw
from glm5cluster.model.inventory import GpuKind
from glm5cluster.tasks import preflight_fabric as F

FACTS = Path(__file__).parents[2] / "facts"
IFACES = Interfaces((Interface("lo", True, 65536, ("127.0.0.1/8",)),
                     Interface("eth0", True, 1500, ("192.0.2.2/24",)),
                     Interface("ib0", True, 4092, ("10.1.0.2/24",))))


def test_interface_from_route_and_pins() -> None:
    assert F.nccl_interface("n1", "n0", "10.1.0.1", Route("10.1.0.1", "ib0", "10.1.0.2"), IFACES, None) == ("ib0", [])
    # the head routes to itself over lo: the interface carrying its address
    head = F.nccl_interface("n0", "n0", "10.1.0.2", Route("10.1.0.2", "lo", "10.1.0.2"), IFACES, None)
    assert head == ("ib0", [])
    dev, probs = F.nccl_interface("n1", "n0", "10.1.0.1", Route("10.1.0.1", "eth0", ""), IFACES, "ib0")
    assert dev == "ib0" and "leaves through eth0" in probs[0].message and probs[0].host == "n1"
    dev, probs = F.nccl_interface("n1", "n0", "10.1.0.1", Route("10.1.0.1", "ib0", ""), IFACES, "ens9")
    assert dev is None and "pinned interface ens9 does not exist on n1" in probs[0].message
    _, probs = F.nccl_interface("n1", "n0", "10.1.0.1", Route("10.1.0.1", "", "", "Network is unreachable"),
                                IFACES, None)
    assert "no route to the head n0" in probs[0].message


def test_route_leaving_through_another_interface() -> None:
    probs = F.check_route_subnet("n1", "n0", "10.1.0.1", Route("10.1.0.1", "eth0", ""), IFACES, "ib0")
    assert probs and "not the cluster interface ib0" in probs[0].message
    assert F.check_route_subnet("n1", "n0", "10.1.0.1", Route("10.1.0.1", "ib0", ""), IFACES, "ib0") == []


def test_duplicate_hostname_names_the_second_node() -> None:
    probs = F.check_hostnames({"a": "gpu-1", "b": "gpu-2", "c": "gpu-1"})
    assert [(p.host, "also the host name of a" in p.message) for p in probs] == [("c", True)]
    assert F.check_hostnames({"a": "x", "b": "y"}) == []


def test_mtu_mismatch_names_the_odd_node() -> None:
    probs = F.check_mtu({"a": 9000, "b": 9000, "c": 1500}, {"a": "ib0", "b": "ib0", "c": "ib0"})
    assert [p.host for p in probs] == ["c"] and "MTU 1500" in probs[0].message
    assert F.check_mtu({"a": 9000, "b": 9000}, {}) == []


def test_argv_parity_ignores_only_node_rank() -> None:
    base = ["python", "-m", "sglang.launch_server", "--tp-size", "16", "--node-rank", "0"]
    assert F.check_argv_parity({"a": base, "b": base[:-1] + ["1"]}) == []
    other = ["python", "-m", "sglang.launch_server", "--tp-size", "8", "--node-rank", "1"]
    probs = F.check_argv_parity({"a": base, "b": other})
    assert probs[0].host == "b" and "'16' vs '8'" in probs[0].message


def rdma(ibstat: str, gids: str | None) -> Rdma:
    g = parse_show_gids((FACTS / "rdma" / gids).read_text()) if gids else ()
    return Rdma(parse_ibstat((FACTS / "rdma" / ibstat).read_text()), g, True)


def test_rdma_roce_sets_gid_index_and_counts_nics() -> None:
    v = F.check_rdma("n0", rdma("ibstat_h100-node_8x-cx7-roce-400g_all-active.txt", "show_gids_h100-hgx-node-a.txt"),
                     {})
    assert v.nics == 8 and v.rate_gbit == 400 and v.env == {"NCCL_IB_GID_INDEX": "3"}
    # the two captures come from different hosts: on this one's GID table mlx5_9/11 have link-local GIDs only
    assert [p.message for p in v.problems] == ["no RoCE v2 GID with an IPv4 address on mlx5_11, mlx5_9"]
    assert expected_global_busbw(v.nics, v.rate_gbit) == 368.0  # the 2 x 8 NDR reference ~370 GB/s


def test_rdma_wrong_pinned_gid_index_refused() -> None:
    v = F.check_rdma("n0", rdma("ibstat_h100-node_8x-cx7-roce-400g_all-active.txt", "show_gids_h100-hgx-node-a.txt"),
                     {"NCCL_IB_GID_INDEX": "0", "NCCL_IB_HCA": "mlx5_0"})
    assert any("NCCL_IB_GID_INDEX=0 is not a RoCE v2 GID" in p.message for p in v.problems)
    assert v.env == {}


def test_rdma_ports_down_and_unknown_hca() -> None:
    r = rdma("ibstat_h100-node_8x-cx7-ib-ndr_3-ports-down.txt", None)
    v = F.check_rdma("n1", r, {})
    assert any("not ACTIVE" in p.message and p.host == "n1" for p in v.problems)
    v = F.check_rdma("n1", r, {"NCCL_IB_HCA": "=mlx5_0,mlx5_99:1"})
    assert any("NCCL_IB_HCA names mlx5_99" in p.message for p in v.problems)
    assert F.check_rdma("n1", Rdma((), (), False), {}).summary.startswith("no RDMA")


def test_rdma_missing_dev_infiniband() -> None:
    r = rdma("ibstat_h100-node_8x-cx7-ib-ndr_all-active_spaces.txt", None)
    v = F.check_rdma("n0", Rdma(r.ports, (), False), {})
    assert any("/dev/infiniband" in p.message for p in v.problems)
    assert v.nics == 8 and v.rate_gbit == 400


def result(node: int, phase: str, ranks: int, busbw: float) -> str:
    return "GLM5PROBE " + json.dumps({"event": "result", "node_rank": node, "phase": phase, "size": 1 << 30,
                                      "ranks": ranks, "time_us": 1, "algbw_gbps": 1, "busbw_gbps": busbw})


def init(node: int) -> str:
    return "GLM5PROBE " + json.dumps({"event": "init", "node_rank": node, "rank": node * 8, "init_s": 0.4})


DONE = 'GLM5PROBE {"event":"done","node_rank":0,"ok":true,"wall_s":9}'


def test_gate_passes_and_names_slowest_node() -> None:
    runs = {"a": parse_probe("\n".join([init(0), result(0, "local", 8, 440), result(0, "global", 16, 360), DONE])),
            "b": parse_probe("\n".join([init(1), result(1, "local", 8, 410), DONE]))}
    v = F.judge_probe(runs, ["a", "b"], 368 * 0.8, LOCAL_BUSBW_GBPS[(GpuKind.H200, 8)] * 0.8, 60)
    assert v.problems == [] and v.global_busbw == 360 and v.slowest == ("b", 410)


def test_gate_link_below_threshold() -> None:
    runs = {"a": parse_probe("\n".join([init(0), result(0, "local", 8, 440), result(0, "global", 16, 35), DONE])),
            "b": parse_probe("\n".join([init(1), result(1, "local", 8, 200), DONE]))}
    v = F.judge_probe(runs, ["a", "b"], 294.4, 344.8, 60)
    msgs = {(p.host, p.message.split(" ")[0]) for p in v.problems}
    assert ("a", "all-reduce") in msgs and ("b", "all-reduce") in msgs
    assert any("35.0 GB/s is below 294.4" in p.message for p in v.problems)


def test_gate_names_the_node_that_never_joined() -> None:
    head = (FACTS / "nccl_probe" / "h200x1-peer-never-joins.log").read_text()  # real: no peer came
    # node a joined (its init line) and then timed out waiting; b never printed an init
    runs = {"a": parse_probe(init(0) + "\n" + head),
            "b": parse_probe(head.replace('"node_rank":0', '"node_rank":1'))}
    v = F.judge_probe(runs, ["a", "b"], None, None, 20)
    assert [p.host for p in v.problems] == ["b"] and "never joined the NCCL group within 20 s (reached node 0's rendezvous: a)" in v.problems[0].message


def test_gate_single_gpu_real_capture_has_no_bandwidth_figure() -> None:
    run = parse_probe(split_runs((FACTS / "nccl_probe" / "h200x1-three-runs.log").read_text())[0])
    v = F.judge_probe({"a": run}, ["a"], None, None, 60)
    assert v.problems == [] and v.global_busbw is None and "init 0.54 s" in v.summary


def test_gate_no_answer_quotes_the_shell() -> None:
    run = parse_probe("env: '/opt/glm5cluster/venv/bin/python': No such file or directory\n")
    v = F.judge_probe({"a": run, "b": None}, ["a", "b"], None, None, 60)
    assert [p.host for p in v.problems] == ["a", "b"]
    assert v.problems[0].message.endswith("gave no answer on a: env: '/opt/glm5cluster/venv/bin/python': "
                                          "No such file or directory")
