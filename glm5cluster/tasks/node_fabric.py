"""What a rank's launch takes from its node's fabric, pure (used by the ``launch`` procedure).

- the interface the node routes on to its head's cluster address, as NCCL_SOCKET_IFNAME and
  GLOO_SOCKET_IFNAME, when neither the inventory (``hosts[].interface`` / ``cluster.interface``)
  nor ``serving.env`` pins one: NCCL alone picks the first non-loopback interface (often docker0
  or a management NIC), so every node gets the one its route uses;
- the node's RoCE v2 GID index as NCCL_IB_GID_INDEX when ``serving.env`` does not pin it and
  the node has exactly one (it differs between nodes and NIC firmware);
- ``/dev/infiniband`` as a device of the rank's container when the node has active HCAs (the
  docker runtime passes no device by default; RDMA also needs ``--ulimit memlock=-1``, which
  the container gets with ``serving.memlock_unlimited``).

A pinned interface or GID index that is wrong on a node is refused by preflight (``fabric``:
tasks/preflight_fabric.py), which ``up`` runs before the launch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glm5cluster.facts.base import Fact
from glm5cluster.facts.network import Interfaces, InterfacesFact, Route, RouteFact
from glm5cluster.facts.rdma import Rdma, RdmaFact
from glm5cluster.runtime.rank import NodeFabric
from glm5cluster.tasks.preflight_fabric import check_rdma, nccl_interface

RDMA_DEVICE = "/dev/infiniband"


def wants_interface(pinned: str | None, serving_env: Mapping[str, str]) -> bool:
    return pinned is None and "NCCL_SOCKET_IFNAME" not in serving_env


def fabric_facts(head_address: str, pinned: str | None, serving_env: Mapping[str, str]) -> dict[str, Fact[Any]]:
    """The facts ``node_fabric`` reads (no route or interfaces when the interface is pinned)."""
    facts: dict[str, Fact[Any]] = {"rdma": RdmaFact()}
    if wants_interface(pinned, serving_env):
        facts.update(route=RouteFact(head_address), ifaces=InterfacesFact())
    return facts


def node_fabric(host: str, head: str, head_address: str, pinned: str | None, serving_env: Mapping[str, str],
                facts: Mapping[str, Any]) -> NodeFabric:
    env: dict[str, str] = {}
    route, ifaces = facts.get("route"), facts.get("ifaces")
    if wants_interface(pinned, serving_env) and isinstance(route, Route) and isinstance(ifaces, Interfaces):
        dev, problems = nccl_interface(host, head, head_address, route, ifaces, None)
        if dev and not problems and dev != "lo":
            env["NCCL_SOCKET_IFNAME"] = dev
            if "GLOO_SOCKET_IFNAME" not in serving_env:
                env["GLOO_SOCKET_IFNAME"] = dev
    rdma = facts.get("rdma")
    devices: tuple[str, ...] = ()
    if isinstance(rdma, Rdma) and rdma.present:
        verdict = check_rdma(host, rdma, serving_env)
        env.update(verdict.env)  # NCCL_IB_GID_INDEX, only when unpinned and unambiguous
        if rdma.dev_infiniband and verdict.nics:
            devices = (RDMA_DEVICE,)
    return NodeFabric(env, devices)
