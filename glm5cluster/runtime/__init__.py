"""How a service runs on a node: the runtime seam (see ``runtime/base.py`` for the protocol).

``for_inventory(inv)`` is the runtime the inventory asks for; ``all_runtimes(inv)`` both, the
wanted one first (status, down and launch look for what *either* runtime left behind).
"""

from __future__ import annotations

from glm5cluster.facts.rank_state import RankState
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.inventory import Runtime as RuntimeMode
from glm5cluster.runtime.base import (
    CLUSTER_LABEL,
    CONFIG_LABEL,
    LOG_MARK,
    RANK_LABEL,
    Installed,
    Runtime,
    Service,
    cluster_prefix,
    rank_stem,
    router_stem,
)
from glm5cluster.runtime.container import ContainerRuntime
from glm5cluster.runtime.unit import UnitRuntime

__all__ = ["CLUSTER_LABEL", "CONFIG_LABEL", "LOG_MARK", "RANK_LABEL", "ContainerRuntime", "Installed",
           "RankState", "Runtime", "Service", "UnitRuntime", "all_runtimes", "by_kind", "cluster_prefix",
           "for_inventory", "rank_stem", "router_stem"]


def for_inventory(inv: Inventory) -> Runtime:
    """The runtime ``serving.runtime`` names."""
    s = inv.serving
    if s.runtime is RuntimeMode.DOCKER:
        return ContainerRuntime(s.sglang_version, s.image)
    return UnitRuntime(s.venv_path)


def all_runtimes(inv: Inventory) -> tuple[Runtime, Runtime]:
    """Both runtimes, the inventory's first."""
    s = inv.serving
    unit, ctr = UnitRuntime(s.venv_path), ContainerRuntime(s.sglang_version, s.image)
    return (ctr, unit) if s.runtime is RuntimeMode.DOCKER else (unit, ctr)


def by_kind(inv: Inventory, kind: str) -> Runtime:
    return next(r for r in all_runtimes(inv) if r.kind == kind)
