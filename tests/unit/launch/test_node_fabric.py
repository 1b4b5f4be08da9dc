"""What a rank's launch takes from its node (tasks/node_fabric.py): the interface its route to
the head uses and the RoCE v2 GID index when the inventory pins neither, /dev/infiniband for the
container on an RDMA node; parsed from real captures (tests/facts/*/SOURCES.md), and wired
through the launch's one state command on a real shell."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.commands import CommandResult
from glm5cluster.connect.local import LocalConnection
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.procedures.launch import read_rank
from glm5cluster.facts.network import Interfaces, parse_ip_addr, parse_route_get
from glm5cluster.facts.rdma import Rdma, parse_ibstat, parse_show_gids
from glm5cluster.model.inventory import Runtime
from glm5cluster.runtime import for_inventory
from glm5cluster.runtime.container import ContainerRuntime
from glm5cluster.runtime.rank import NodeFabric, rank_launch
from glm5cluster.tasks.node_fabric import fabric_facts, node_fabric

ROOT = Path(__file__).resolve().parents[3]
FACTS = ROOT / "tests" / "facts"


def _route() -> object:
    text = (FACTS / "network" / "ip-j-route-get_via-gateway_dev-machine.json").read_text()
    return parse_route_get("10.255.255.1", CommandResult("ip", 0, text, ""))


def _ifaces() -> Interfaces:
    return Interfaces(parse_ip_addr((FACTS / "network" / "ip-j-addr_dev-machine.json").read_text()))


def _roce() -> Rdma:
    return Rdma(parse_ibstat((FACTS / "rdma" / "ibstat_h100-node_8x-cx7-roce-400g_all-active.txt").read_text()),
                parse_show_gids((FACTS / "rdma" / "show_gids_h100-hgx-node-a.txt").read_text()), True)


def test_unpinned_interface_becomes_the_routes_device() -> None:
    facts = {"route": _route(), "ifaces": _ifaces(), "rdma": Rdma((), (), False)}
    nf = node_fabric("n2", "n1", "10.255.255.1", None, {}, facts)
    assert nf.env == {"NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0"} and nf.devices == ()
    assert set(fabric_facts("10.255.255.1", None, {})) == {"rdma", "route", "ifaces"}


def test_pinned_interface_is_left_alone() -> None:
    facts = {"route": _route(), "ifaces": _ifaces(), "rdma": Rdma((), (), False)}
    assert node_fabric("n2", "n1", "10.255.255.1", "ib0", {}, facts).env == {}
    assert node_fabric("n2", "n1", "10.255.255.1", None, {"NCCL_SOCKET_IFNAME": "=bond0"}, facts).env == {}
    assert set(fabric_facts("10.255.255.1", "ib0", {})) == {"rdma"}  # no route asked when pinned


def test_roce_node_gets_its_gid_index_and_the_rdma_device() -> None:
    rdma = _roce()
    idx = {rdma.roce_v2_index(p.device) for p in rdma.ports if p.link_layer == "Ethernet"} - {None}
    nf = node_fabric("n2", "n1", "10.255.255.1", "eth0", {}, {"rdma": rdma})
    assert idx == {3} and nf.env == {"NCCL_IB_GID_INDEX": "3"}
    assert nf.devices == ("/dev/infiniband",)
    pinned = node_fabric("n2", "n1", "10.255.255.1", "eth0", {"NCCL_IB_GID_INDEX": "3"}, {"rdma": rdma})
    assert pinned.env == {} and pinned.devices == ("/dev/infiniband",)
    no_dev = Rdma(rdma.ports, rdma.gids, False)  # HCAs without /dev/infiniband: nothing to pass
    assert node_fabric("n2", "n1", "10.255.255.1", "eth0", {}, {"rdma": no_dev}).devices == ()


def test_discovered_fabric_reaches_the_env_file_and_the_container() -> None:
    checked = load_and_check(ROOT / "inventory" / "h100-bf16.yaml")
    inv, topo = checked.loaded.inventory, checked.topology
    rep = topo.replicas[0]
    rank = rep.ranks[1]
    fab = NodeFabric({"NCCL_SOCKET_IFNAME": "bond0", "NCCL_IB_GID_INDEX": "3"}, ("/dev/infiniband",))
    plain = rank_launch(inv, topo, rep, rank, None, for_inventory(inv))
    found = rank_launch(inv, topo, rep, rank, None, for_inventory(inv), fab)
    env = found.env.content.decode()
    assert "NCCL_IB_GID_INDEX=3" in env and "NCCL_IB_GID_INDEX" not in plain.env.content.decode()
    assert found.digest != plain.digest  # a changed discovery restarts the group with it
    docker = inv.model_copy(update={"serving": inv.serving.model_copy(update={"runtime": Runtime.DOCKER})})
    rt = for_inventory(docker)
    assert isinstance(rt, ContainerRuntime)
    argv = rt.run_argv(rank_launch(docker, topo, rep, rank, None, rt, fab).service)
    i = argv.index("--device")
    assert argv[i + 1] == "/dev/infiniband" and "memlock=-1" in argv and argv.index(argv[-1]) > i
    assert "--device" not in rt.run_argv(rank_launch(docker, topo, rep, rank, None, rt).service)


def test_launch_reads_the_fabric_in_its_state_command_on_a_real_shell(tmp_path: Path) -> None:
    """The lab inventory unpinned: both "nodes" are this machine; the interface the launch puts in
    the env is the one this machine's kernel routes on to the head's cluster address."""
    text = (ROOT / "inventory" / "lab.yaml").read_text()
    assert "  interface: eth0\n" in text
    inv_path = tmp_path / "lab.yaml"
    inv_path.write_text(text.replace("  interface: eth0\n", ""))
    checked = load_and_check(inv_path)
    inv, topo, nodes = checked.loaded.inventory, checked.topology, list(checked.loaded.nodes)
    rep = topo.replicas[0]
    assert rep.ranks[1].node.interface is None
    got = subprocess.run(["ip", "-j", "route", "get", rep.head.node.cluster_address], capture_output=True,
                         text=True, check=False)
    dev = json.loads(got.stdout)[0]["dev"] if got.returncode == 0 else None
    pool = ConnectionPool(nodes, factory=lambda n: LocalConnection(n.name))
    ctx = ClusterContext(tuple(n.name for n in nodes), {n.name: n for n in nodes}, inv, topo, False, None,
                         "launch", 0, 4, pool, lambda e: None, None)
    rt = for_inventory(inv)
    _, _, fabric = read_rank(ctx, rank_launch(inv, topo, rep, rep.ranks[1], None, rt), rep)
    if dev and dev != "lo":  # a machine without a route there has nothing to discover
        assert fabric.env == {"NCCL_SOCKET_IFNAME": dev, "GLOO_SOCKET_IFNAME": dev}, (fabric, got.stdout)
    assert fabric.devices in ((), ("/dev/infiniband",))
