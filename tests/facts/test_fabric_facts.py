"""RDMA, route and NCCL-probe parsers on real captures (sources in each folder's SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

from glm5cluster.commands import CommandResult
from glm5cluster.facts.nccl_probe import parse_probe, split_runs
from glm5cluster.facts.network import parse_route_get
from glm5cluster.facts.rdma import Rdma, parse_ibdev2netdev, parse_ibstat, parse_show_gids

HERE = Path(__file__).parent


def text(folder: str, name: str) -> str:
    return (HERE / folder / name).read_text()


def test_ibstat_roce_all_active() -> None:
    ports = parse_ibstat(text("rdma", "ibstat_h100-node_8x-cx7-roce-400g_all-active.txt"))
    assert len(ports) == 12 and all(p.active for p in ports)
    assert {p.link_layer for p in ports} == {"Ethernet"}
    assert sorted(p.rate_gbit for p in ports).count(400) == 8
    assert ports[0].device == "mlx5_0" and ports[0].port == 1 and ports[0].physical == "LinkUp"


def test_ibstat_three_ports_down_and_space_indented() -> None:
    down = parse_ibstat(text("rdma", "ibstat_h100-node_8x-cx7-ib-ndr_3-ports-down.txt"))
    assert len(down) == 12 and sum(not p.active for p in down) == 3
    ib = [p for p in down if p.link_layer == "InfiniBand"]
    assert len(ib) == 8 and {p.rate_gbit for p in ib} == {400}
    spaces = parse_ibstat(text("rdma", "ibstat_h100-node_8x-cx7-ib-ndr_all-active_spaces.txt"))
    assert len(spaces) == 9 and sum(p.link_layer == "InfiniBand" for p in spaces) == 8


def test_show_gids_roce_v2_index() -> None:
    gids = parse_show_gids(text("rdma", "show_gids_h100-hgx-node-a.txt"))
    assert len(gids) == 44  # the capture's own n_gids_found=44
    rdma = Rdma((), gids, True)
    assert rdma.roce_v2_index("mlx5_0") == 3
    assert rdma.roce_v2_index("mlx5_11") is None  # link-local GIDs only (a down port)
    one = parse_show_gids(text("rdma", "show_gids-mlx5_0_h100-hgx.txt"))
    assert [(g.index, g.version, g.ipv4, g.netdev) for g in one][3] == (3, "v2", "10.99.91.39", "ens108np0")
    assert one[0].ipv4 == "" and one[0].netdev == "ens108np0"


def test_ibdev2netdev() -> None:
    m = parse_ibdev2netdev(text("rdma", "ibdev2netdev_h100-hgx-node-c.txt"))
    assert len(m) == 12 and m["mlx5_1"] == ("bond0", True) and m["mlx5_2"] == ("ens12f1np1", False)


def test_route_get_self_and_via_gateway() -> None:
    r = parse_route_get("192.0.2.2", CommandResult("ip", 0, text("network", "ip-j-route-get_self_dev-machine.json"), ""))
    assert (r.device, r.source) == ("lo", "192.0.2.2")
    g = parse_route_get("10.255.255.1", CommandResult("ip", 0,
                        text("network", "ip-j-route-get_via-gateway_dev-machine.json"), ""))
    assert (g.device, g.source, g.error) == ("eth0", "192.0.2.2", "")
    bad = parse_route_get("10.9.9.9", CommandResult("ip", 2, "", "RTNETLINK answers: Network is unreachable"))
    assert bad.device == "" and "unreachable" in bad.error


def test_probe_real_h200_runs() -> None:
    runs = split_runs(text("nccl_probe", "h200x1-three-runs.log"))
    assert len(runs) == 3
    parsed = [parse_probe(r) for r in runs]
    assert [p.init_s for p in parsed] == [(0.5401,), (0.2928,), (0.2885,)]
    for p in parsed:
        assert p.done and p.ok and not p.errors and not p.garbled
        assert len(p.results) == 8  # 4 sizes x (local, global)
        best = p.best("global")
        assert best is not None and best.size == 1 << 30 and best.ranks == 1 and best.busbw_gbps == 0.0
    assert [p.wall_s for p in parsed] == [5.22, 4.87, 5.069]


def test_probe_real_peer_never_joins() -> None:
    p = parse_probe(text("nccl_probe", "h200x1-peer-never-joins.log"))
    assert p.done and not p.ok and p.timed_out and not p.init_s
    assert p.errors[0].rank == 0 and "never joined" in p.errors[0].message


def test_probe_ignores_noise_and_reports_garbled_lines() -> None:
    p = parse_probe("NCCL INFO Bootstrap : Using eth0\nGLM5PROBE {not json\nGLM5PROBE {\"event\":\"done\","
                    "\"node_rank\":0,\"ok\":true,\"wall_s\":1.0}\n")
    assert p.done and p.ok and len(p.garbled) == 1


def test_probe_real_h200x2_two_nodes_judged() -> None:
    # two "nodes" of one H200 each, joined over TCP on 127.0.0.1 (one NVLink pair, NV18)
    from glm5cluster.tasks.preflight_fabric import judge_probe

    for run in (1, 2, 3):
        n0 = parse_probe(text("nccl_probe", f"h200x2-two-nodes-run{run}-node0.log"))
        n1 = parse_probe(text("nccl_probe", f"h200x2-two-nodes-run{run}-node1.log"))
        assert n0.done and n0.ok and n1.done and n1.ok and n0.reached and n1.reached
        best = n0.best("global")
        assert best is not None and best.ranks == 2 and best.size == 1 << 30
        assert 320 < best.busbw_gbps < 330  # busbw = algbw for n = 2
        assert n1.best("global") is None  # only node 0 reports the global phase
        ok = judge_probe({"n0": n0, "n1": n1}, ["n0", "n1"], 0.8 * 300, None, 120)
        assert ok.problems == [] and ok.global_busbw == best.busbw_gbps
        low = judge_probe({"n0": n0, "n1": n1}, ["n0", "n1"], 400.0, None, 120)
        assert [p.host for p in low.problems] == ["n0"] and "below 400.0 GB/s" in low.problems[0].message


def test_probe_real_h200x2_one_node_local_phase() -> None:
    for run in (1, 2):
        p = parse_probe(text("nccl_probe", f"h200x2-one-node-run{run}.log"))
        assert p.done and p.ok and len(p.init_s) == 2
        local = p.best("local")
        assert local is not None and local.ranks == 2 and 320 < local.busbw_gbps < 330


def test_lspci_acs_on_a_switch_port_is_named() -> None:
    from glm5cluster.facts.pcie import Pcie, PcieFact, parse_lspci
    from glm5cluster.tasks.preflight_fabric import check_acs

    on = text("pcie", "lspci-vvv_amd-matisse-switch-downstream-port_acs-on.txt")
    denied = text("pcie", "lspci-vvv_amd-matisse-switch-port_not-root.txt")
    bridges = parse_lspci(on + "\n" + denied)
    assert [(b.address, b.port, b.denied) for b in bridges] == [("03:02.0", "Downstream Port", False),
                                                                  ("03:05.0", "", True)]
    assert bridges[0].acs_on == ["SrcValid", "ReqRedir", "CmpltRedir", "UpstreamFwd"]  # ACSCtl, not ACSCap
    probs, _ = check_acs("gpu-1", Pcie(True, bridges))
    assert [p.host for p in probs] == ["gpu-1"]
    assert "PCIe ACS is enabled on 1 PCIe switch port(s) of gpu-1: 03:02.0 (SrcValid+ ReqRedir+ CmpltRedir+ " \
           "UpstreamFwd+)" in probs[0].message and "setpci -s <port> ECAP_ACS+0x6.w=0000" in probs[0].fix
    # the same port with ACS turned off (what setpci writes: every control bit clear) passes
    off = on.replace("ACSCtl:\tSrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+",
                     "ACSCtl:\tSrcValid- TransBlk- ReqRedir- CmpltRedir- UpstreamFwd-")
    assert check_acs("gpu-1", Pcie(True, parse_lspci(off))) == ([], "PCIe ACS off on 1 switch port(s)")
    # not root: nothing readable, said so; no lspci: said so
    assert check_acs("gpu-1", Pcie(True, parse_lspci(denied)))[1] == "PCIe ACS not readable (lspci needs root)"
    fact = PcieFact()
    none = fact.parse(CommandResult("sh", 0, "glm5cluster: no lspci\n", ""))
    assert not none.available and "no lspci" in check_acs("gpu-1", none)[1]
    assert fact.command().sudo and "-d ::0604" in (fact.command().script or "")
