"""The registry of cluster procedures (steps that orchestrate across hosts; see
``engine/procedure.py``). List each one here by import: ``PROCEDURES = {"name": Proc()}``."""

from __future__ import annotations

from glm5cluster.engine.procedure import Procedure

PROCEDURES: dict[str, Procedure] = {}
