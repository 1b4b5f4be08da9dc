"""Preflight's ``fabric`` check of one replica (called by the ``preflight`` procedure).

- the interface each node routes on to the head's cluster address (``ip route get``), against a
  pinned interface (unpinned, the launch exports the route's interface per node:
  ``tasks/node_fabric.py``);
- host names unique, MTU equal on that interface;
- TCP both ways between every pair of nodes on the dist-init port and on a high port in NCCL's
  range (a short-lived listener on each node in turn, a connect with a timeout from the others);
- every rank's rendered server argv identical except --node-rank;
- RDMA: ports ACTIVE, link layer, RoCE v2 GID index, NCCL_IB_HCA naming real devices;
- PCIe ACS off on the PCIe switch ports (``lspci -vvv``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from glm5cluster.commands import Shell
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.facts.base import Fact
from glm5cluster.facts.network import HostnameFact, Interfaces, InterfacesFact, RouteFact
from glm5cluster.facts.pcie import PcieFact
from glm5cluster.facts.rdma import RdmaFact
from glm5cluster.sglang.args import build_args
from glm5cluster.tasks import agents
from glm5cluster.tasks import preflight_fabric as F
from glm5cluster.tasks.node_fabric import wants_interface
from glm5cluster.tasks.preflight import Problem
from glm5cluster.topology import Replica


def fabric_facts(head_address: str) -> dict[str, Fact[Any]]:
    return {"ifaces": InterfacesFact(), "route": RouteFact(head_address), "hostname": HostnameFact(),
            "rdma": RdmaFact(), "pcie": PcieFact()}


def nccl_default_interface(ifaces: Interfaces) -> str | None:
    """What NCCL picks with NCCL_SOCKET_IFNAME unset: an ``ib*`` interface first, else the first
    interface that is neither ``lo`` nor ``docker*`` (NCCL's socket.cc findInterfaces order)."""
    up = [i for i in ifaces.interfaces if i.up and i.addresses]
    ib = [i for i in up if i.name.startswith("ib")]
    rest = [i for i in up if i.name != "lo" and not i.name.startswith("docker")]
    pick = (ib or rest)
    return pick[0].name if pick else None


def listen_script(addr: str, port: int, secs: float) -> str:
    """Start a listener detached; print ``pid=N``, or ``busy`` when the port is taken already."""
    listen = shlex.join(agents.command("tcp_listen", addr, str(port), str(secs)))
    probe = f"ss -Hltn \"sport = :{port}\" | grep -q ."
    return (f"if {probe}; then echo busy; exit 0; fi; err=$(mktemp); "
            f"setsid {listen} </dev/null >/dev/null 2>\"$err\" & pid=$!; i=0; "
            f"while [ $i -lt 30 ] && ! {probe}; do kill -0 $pid 2>/dev/null || break; sleep 0.1; i=$((i+1)); done; "
            f"if {probe}; then rm -f \"$err\"; echo \"pid=$pid\"; "
            "else tail -n1 \"$err\"; rm -f \"$err\"; exit 1; fi")


class Fabric:
    def __init__(self, ctx: ClusterContext, rep: Replica, connect_timeout: float) -> None:
        self.ctx, self.rep, self.timeout = ctx, rep, connect_timeout
        self.inv = ctx.inventory
        self.hosts = [r.node.name for r in rep.ranks]
        self.nodes = {r.node.name: r.node for r in rep.ranks}
        self.head = self.hosts[0]
        self.problems: list[Problem] = []
        self.notes: dict[str, list[str]] = {h: [] for h in self.hosts}
        self.nics: dict[str, tuple[int, int]] = {}  # host -> (active NICs at top rate, rate)
        self.env: dict[str, dict[str, str]] = {h: {} for h in self.hosts}

    def check(self, facts: Mapping[str, Mapping[str, Any]]) -> None:
        head_addr = self.rep.head.node.cluster_address
        chosen: dict[str, str | None] = {}
        for h in self.hosts:
            f, node = facts[h], self.nodes[h]
            dev, probs = F.nccl_interface(h, self.head, head_addr, f["route"], f["ifaces"], node.interface)
            own = f["ifaces"].with_address(node.cluster_address)
            probs += F.check_route_subnet(h, self.head, head_addr, f["route"], f["ifaces"],
                                          own.name if own else None)
            found = ""
            if not probs and wants_interface(node.interface, self.inv.serving.env) and dev and dev != "lo":
                # unpinned: the launch sets the route's interface per node (tasks/node_fabric.py)
                default = nccl_default_interface(f["ifaces"])
                other = f", not NCCL default {default}" if default and default != dev else ""
                found = f" (from the route; set by the launch{other})"
            self.problems += probs
            chosen[h] = dev
            if dev:
                self.notes[h].append(f"NCCL/Gloo interface {dev}{found}")
            rd = F.check_rdma(h, f["rdma"], self.inv.serving.env)
            self.problems += rd.problems
            self.nics[h] = (rd.nics, rd.rate_gbit)
            self.env[h].update(rd.env)
            self.notes[h].append(rd.summary)
            if "pcie" in f:
                acs, note = F.check_acs(h, f["pcie"])
                self.problems += acs
                self.notes[h].append(note)
        self.problems += F.check_hostnames({h: facts[h]["hostname"] for h in self.hosts})
        mtus: dict[str, int | None] = {}
        for h, dev in chosen.items():
            iface = facts[h]["ifaces"].by_name(dev) if dev else None
            mtus[h] = iface.mtu if iface else None
        self.problems += F.check_mtu(mtus, chosen)
        topo = self.ctx.topology
        if topo is not None:
            # the server's own arguments (the head alone may start through the API-key launcher)
            self.problems += F.check_argv_parity({r.node.name: build_args(self.inv, topo, self.rep, r)
                                                  for r in self.rep.ranks})
        if self.rep.nnodes > 1 and not self.problems:
            self.pairwise_tcp()

    def pairwise_tcp(self) -> None:
        """Each node listens in turn on the dist-init port and the high port; the others connect."""
        ports = [self.inv.serving.dist_init_port, self.inv.preflight.high_port]
        for listener in self.hosts:
            addr = self.nodes[listener].cluster_address
            for port in ports:
                self.one_way(listener, addr, port, [h for h in self.hosts if h != listener])

    def one_way(self, listener: str, addr: str, port: int, clients: list[str]) -> None:
        secs = self.timeout * 2 + 10
        res = self.ctx.run(listener, Shell.sh(listen_script(addr, port, secs), timeout=30,
                                              description=f"listen on {addr}:{port}"))
        out = res.stdout.strip()
        if out == "busy":
            self.notes[listener].append(f"port {port} in use: TCP test to it skipped")
            return
        if not res.ok:
            self.problems.append(Problem(listener, f"cannot listen on {addr}:{port}: {res.tail(1)}",
                                         "check hosts[].cluster_address belongs to this host"))
            return
        pid = out.rpartition("pid=")[2]
        what = "dist-init" if port == self.inv.serving.dist_init_port else "NCCL range"

        def connect(host: str) -> str:
            cmd = Shell.cmd(*agents.command("tcp_connect", addr, str(port), str(self.timeout)),
                            timeout=self.timeout + 20, description=f"connect to {addr}:{port}")
            return self.ctx.run(host, cmd).stdout.strip() or "error: no answer"

        try:
            for h, hr in self.ctx.fan_out(connect, clients).items():
                got = hr.value if hr.ok and hr.value else f"error: {hr.error}"
                if got != "ok":
                    self.problems.append(Problem(
                        h, f"cannot reach {listener} at {addr}:{port} ({what}) over TCP: {got.removeprefix('error: ')}",
                        f"allow all TCP between the replica's nodes on the cluster network (NCCL and Gloo use "
                        f"random high ports, not only {self.inv.serving.dist_init_port}); check firewalls on "
                        f"{listener} (iptables -S) and routes"))
        finally:
            if pid.isdigit():
                self.ctx.run(listener, Shell.sh(f"kill {pid} 2>/dev/null; true", description="stop the listener"))


