"""The fabric check and the NCCL gate as procedures, over FakeConnections that answer like the
nodes would (the probe's answers are its real output protocol; the node-1 timeout is the real
H200 capture's shape)."""

from __future__ import annotations

import json
from pathlib import Path

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.events import null_sink
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.procedures.preflight_nccl import PROBE_PATH, run_gate
from glm5cluster.engine.procedures.preflight_net import Fabric
from glm5cluster.facts.network import Interface, Interfaces, Route
from glm5cluster.facts.rdma import Rdma
from glm5cluster.model.loader import load_inventory
from glm5cluster.tasks import agents
from glm5cluster.topology import plan_topology

ROOT = Path(__file__).resolve().parents[2]
NEVER_JOINED = (ROOT / "tests" / "facts" / "nccl_probe" / "h200x1-peer-never-joins.log").read_text()


def setup(respond, path: Path = ROOT / "inventory" / "h200-bf16.yaml"):  # type: ignore[no-untyped-def]
    loaded = load_inventory(path)
    inv, nodes = loaded.inventory, list(loaded.nodes)
    topo = plan_topology(inv, nodes)
    conns: dict[str, FakeConnection] = {}

    def factory(n):  # type: ignore[no-untyped-def]
        conns[n.name] = FakeConnection(n.name, responder=lambda c, h=n.name: respond(h, c))
        return conns[n.name]

    pool = ConnectionPool(nodes, factory=factory)
    hosts = tuple(n.name for n in nodes)
    ctx = ClusterContext(hosts, {n.name: n for n in nodes}, inv, topo, False, None, "preflight", 0, 4,
                         pool, null_sink, None)
    return ctx, topo.replicas[0], conns


def ev(**kw: object) -> str:
    return "GLM5PROBE " + json.dumps(kw)


def test_gate_passes_with_the_real_probe_uploaded_and_the_venv_python() -> None:
    def respond(host: str, cmd: Shell) -> CommandResult | None:
        line = cmd.command_line()
        assert PROBE_PATH in line and "/bin/python" in line and "NCCL_SOCKET_IFNAME=ens2f0" in line
        rank = 0 if host == "h200-0" else 1
        out = [ev(event="init", node_rank=rank, rank=rank * 8, init_s=0.41),
               ev(event="result", node_rank=rank, phase="local", size=1 << 30, ranks=8, time_us=1, algbw_gbps=1,
                  busbw_gbps=440.0)]
        if rank == 0:
            out.append(ev(event="result", node_rank=0, phase="global", size=1 << 30, ranks=16, time_us=1,
                          algbw_gbps=1, busbw_gbps=355.0))
        out.append(ev(event="done", node_rank=rank, ok=True, wall_s=9.0))
        return CommandResult("", 0, "NCCL INFO noise\n" + "\n".join(out) + "\n")

    ctx, rep, conns = setup(respond)
    v = run_gate(ctx, rep, {}, {h: (8, 400) for h in ("h200-0", "h200-1")})
    assert v.problems == [] and v.global_busbw == 355.0 and "busbw 355.0 GB/s across 2 nodes (min 294.4)" in v.summary
    for c in conns.values():
        assert c.uploads[0].dest == PROBE_PATH and c.uploads[0].content == agents.source("nccl_probe").encode()


def test_gate_names_the_node_that_never_joined_and_a_slow_link() -> None:
    def respond(host: str, cmd: Shell) -> CommandResult | None:
        if host == "h200-1":  # never printed init: its probe timed out (the real capture's lines)
            return CommandResult("", 1, NEVER_JOINED.replace('"node_rank":0,"rank":0', '"node_rank":1,"rank":8'))
        return CommandResult("", 1, ev(event="init", node_rank=0, rank=0, init_s=0.4) + "\n" + NEVER_JOINED)

    ctx, rep, _ = setup(respond)
    v = run_gate(ctx, rep, {}, {})
    assert [p.host for p in v.problems] == ["h200-1"]
    assert "never joined the NCCL group within 180 s (reached node 0's rendezvous: h200-0)" in v.problems[0].message

    def slow(host: str, cmd: Shell) -> CommandResult | None:
        rank = 0 if host == "h200-0" else 1
        out = [ev(event="init", node_rank=rank, rank=rank * 8, init_s=0.4),
               ev(event="result", node_rank=rank, phase="local", size=1 << 30, ranks=8, time_us=1, algbw_gbps=1,
                  busbw_gbps=430.0)]
        if rank == 0:
            out.append(ev(event="result", node_rank=0, phase="global", size=1 << 30, ranks=16, time_us=1,
                          algbw_gbps=1, busbw_gbps=35.0))
        return CommandResult("", 0, "\n".join(out + [ev(event="done", node_rank=rank, ok=True, wall_s=9.0)]))

    ctx, rep, _ = setup(slow)
    v = run_gate(ctx, rep, {}, {h: (8, 400) for h in ("h200-0", "h200-1")})
    assert [p.host for p in v.problems] == ["h200-0"] and "35.0 GB/s is below 294.4 GB/s" in v.problems[0].message


IFACES = {"h200-0": Interfaces((Interface("lo", True, 65536, ("127.0.0.1/8",)),
                                Interface("ens2f0", True, 9000, ("10.30.0.20/24",)))),
          "h200-1": Interfaces((Interface("lo", True, 65536, ("127.0.0.1/8",)),
                                Interface("ens2f0", True, 9000, ("10.30.0.21/24",))))}


def facts(hostnames: dict[str, str]) -> dict[str, dict[str, object]]:
    return {"h200-0": {"ifaces": IFACES["h200-0"], "route": Route("10.30.0.20", "lo", "10.30.0.20"),
                       "hostname": hostnames["h200-0"], "rdma": Rdma((), (), False)},
            "h200-1": {"ifaces": IFACES["h200-1"], "route": Route("10.30.0.20", "ens2f0", "10.30.0.21"),
                       "hostname": hostnames["h200-1"], "rdma": Rdma((), (), False)}}


def test_blocked_high_port_named_with_the_dist_init_port_open() -> None:
    def respond(host: str, cmd: Shell) -> CommandResult | None:
        line = cmd.command_line()
        if "listen on" in cmd.description:
            return CommandResult("", 0, "pid=4242\n")
        if "connect to" in cmd.description:  # h200-1's firewall drops 45000 (iptables in the lab)
            blocked = host == "h200-0" and "10.30.0.21" in line and "45000" in line
            return CommandResult("", 0, "error: timed out\n" if blocked else "ok\n")
        return CommandResult("", 0, "")

    ctx, rep, conns = setup(respond)
    fab = Fabric(ctx, rep, 1.0)
    fab.check(facts({"h200-0": "a", "h200-1": "b"}))
    assert [(p.host, p.message) for p in fab.problems] == [
        ("h200-0", "cannot reach h200-1 at 10.30.0.21:45000 (NCCL range) over TCP: timed out")]
    assert any("kill 4242" in c.command_line() for c in conns["h200-1"].ran)  # listener stopped


def test_duplicate_hostname_stops_before_tcp() -> None:
    ctx, rep, conns = setup(lambda h, c: CommandResult("", 0, "ok\n"))
    fab = Fabric(ctx, rep, 1.0)
    fab.check(facts({"h200-0": "gpu", "h200-1": "gpu"}))
    assert [p.host for p in fab.problems] == ["h200-1"] and "also the host name of h200-0" in fab.problems[0].message
    assert fab.notes["h200-1"][0] == "NCCL/Gloo interface ens2f0"


def test_unpinned_interface_is_taken_from_the_route_not_refused(tmp_path: Path) -> None:
    """No interface in the inventory and a management NIC first (what NCCL alone would pick): not an error
    any more, the launch exports the route's interface per node (tasks/node_fabric.py)."""
    text = (ROOT / "inventory" / "h200-bf16.yaml").read_text()
    assert text.count("    interface: ens2f0\n") == 2
    (tmp_path / "inv.yaml").write_text(text.replace("    interface: ens2f0\n", ""))
    ctx, rep, _ = setup(lambda h, c: CommandResult("", 0, "busy\n" if "listen on" in c.description else "ok\n"),
                        tmp_path / "inv.yaml")
    assert rep.ranks[1].node.interface is None
    f = facts({"h200-0": "a", "h200-1": "b"})
    mgmt = Interface("eno1", True, 1500, ("198.51.100.21/24",))
    for h in f:
        f[h]["ifaces"] = Interfaces((IFACES[h].interfaces[0], mgmt, IFACES[h].interfaces[1]))
    fab = Fabric(ctx, rep, 1.0)
    fab.check(f)
    assert fab.problems == []
    assert fab.notes["h200-1"][0] == "NCCL/Gloo interface ens2f0 (from the route; set by the launch, not NCCL default eno1)"


def test_acs_on_a_switch_port_stops_before_tcp() -> None:
    from glm5cluster.facts.pcie import Pcie, parse_lspci

    ctx, rep, conns = setup(lambda h, c: CommandResult("", 0, "ok\n"))
    f = facts({"h200-0": "a", "h200-1": "b"})
    capture = (ROOT / "tests" / "facts" / "pcie" / "lspci-vvv_amd-matisse-switch-downstream-port_acs-on.txt")
    f["h200-0"]["pcie"] = Pcie(True, ())
    f["h200-1"]["pcie"] = Pcie(True, parse_lspci(capture.read_text()))
    fab = Fabric(ctx, rep, 1.0)
    fab.check(f)
    assert [p.host for p in fab.problems] == ["h200-1"] and "PCIe ACS is enabled" in fab.problems[0].message
    assert "no PCIe switch ports" in fab.notes["h200-0"]
    assert not any("listen on" in c.description for conn in conns.values() for c in conn.ran)
