"""Load an inventory and check it against the hardware catalog and the topology planner.

The model layer reports problems in the file itself (`model.loader.load_inventory`); this
adds the plan-level ones (`topology.plan_topology`: tp, replicas, FP8 on AMD, ...) with
the same file:line: field.path format, so every command reports input problems alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from glm5cluster.errors import InputProblems, PlanError, Problem
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.loader import LoadedInventory, load_inventory
from glm5cluster.redact import remember_env
from glm5cluster.topology import Topology, plan_topology


@dataclass(frozen=True)
class CheckedInventory:
    """A loaded inventory, its topology, and every warning about it (file, line, path)."""

    loaded: LoadedInventory
    topology: Topology
    warnings: list[Problem] = field(default_factory=list)


def plan_problem(loaded: LoadedInventory, err: PlanError) -> Problem:
    """A `PlanError` as a problem of the inventory file, pointing at the line of `err.path`."""
    return loaded.problem(err.path, err.message, err.hint)


def remember_secrets(inv: Inventory) -> None:
    """Everything printed from now on masks the values of the secrets the inventory names."""
    sec = inv.serving.secrets
    remember_env(os.environ, sec.api_key_env, sec.hf_token_env, getattr(inv.model.source, "token_env", None))


def load_and_check(path: str | os.PathLike[str]) -> CheckedInventory:
    """Load, validate and plan. Raises `InputProblems` (exit 2) for any problem, with lines."""
    loaded = load_inventory(path)
    remember_secrets(loaded.inventory)
    try:
        topology = plan_topology(loaded.inventory, loaded.nodes)
    except PlanError as err:
        raise InputProblems([plan_problem(loaded, err)]) from None
    warnings = list(loaded.warnings) + [plan_problem(loaded, w) for w in topology.warnings]
    return CheckedInventory(loaded=loaded, topology=topology, warnings=warnings)
