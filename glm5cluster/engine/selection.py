"""Which hosts a run and each step touch: ``--limit`` and the steps' ``hosts:`` selectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from glm5cluster.errors import InputError
from glm5cluster.model.nodes import Node


def plan_topology_or_none(inventory: Any, nodes: Sequence[Node]) -> Any:
    """The cluster topology when the inventory forms one, else None (plain host playbooks)."""
    if inventory is None:
        return None
    try:
        from glm5cluster.topology import plan_topology

        return plan_topology(inventory, nodes)
    except Exception:  # noqa: BLE001 - no topology: head/workers selectors are then refused
        return None


def limit_hosts(nodes: Sequence[Node], limit: Sequence[str]) -> list[str]:
    """Hosts named by ``--limit`` (host or group names, comma-separated), in inventory order."""
    names = [n.name for n in nodes]
    if not limit:
        return names
    wanted: set[str] = set()
    groups = {g for n in nodes for g in n.groups}
    for item in (x.strip() for part in limit for x in part.split(",")):
        if not item:
            continue
        if item in names:
            wanted.add(item)
        elif item in groups:
            wanted.update(n.name for n in nodes if item in n.groups)
        else:
            raise InputError(f"--limit {item!r} names no host or group of the inventory",
                             hint=f"hosts: {', '.join(names)}; groups: {', '.join(sorted(groups)) or 'none'}")
    return [n for n in names if n in wanted]


def check_selector(selector: str, nodes: Sequence[Node], topology: Any, step: str) -> None:
    kind, _, arg = selector.partition(":")
    if kind in ("head", "workers") and topology is None:
        raise InputError(f"step {step!r} selects {kind!r} but the inventory forms no topology",
                         hint="run `glm5cluster plan INV` to see why, or select hosts by group/label")
    if kind == "group" and not any(arg in n.groups for n in nodes):
        raise InputError(f"step {step!r} selects group {arg!r}, which the inventory does not define")
    if kind == "host" and arg not in {n.name for n in nodes}:
        raise InputError(f"step {step!r} selects host {arg!r}, which is not in the inventory")


def select(selector: str, node: Node, topology: Any) -> bool:
    kind, _, arg = selector.partition(":")
    if kind == "all":
        return True
    if kind == "host":
        return node.name == arg
    if kind == "group":
        return arg in node.groups
    if kind == "label":
        key, _, value = arg.partition("=")
        return node.labels.get(key) == value
    placed = topology.replica_of(node.name) if topology is not None else None
    if placed is None:
        return False
    is_head = bool(placed[1].is_head)
    return is_head if kind == "head" else not is_head
