"""The registry of cluster procedures (steps that orchestrate across hosts; see
``engine/procedure.py``). List each one here by import: ``PROCEDURES = {"name": Proc()}``."""

from __future__ import annotations

from glm5cluster.engine.procedure import Procedure
from glm5cluster.engine.procedures.flagcheck import FlagCheck
from glm5cluster.engine.procedures.launch import Launch
from glm5cluster.engine.procedures.preflight import Preflight
from glm5cluster.engine.procedures.readiness import Readiness
from glm5cluster.engine.procedures.reboot import Reboot
from glm5cluster.engine.procedures.router import RouterDown, RouterRegister
from glm5cluster.engine.procedures.smoke import Smoke
from glm5cluster.engine.procedures.weights import StageWeights

PROCEDURES: dict[str, Procedure] = {
    "preflight": Preflight(),
    "launch": Launch(),
    "readiness": Readiness(),
    "smoke": Smoke(),
    # GPU stack, SGLang runtime, weights
    "gpu.reboot": Reboot(),
    "sglang.flagcheck": FlagCheck(),
    "weights.stage": StageWeights(),
    "router.register": RouterRegister(),
    "router.down": RouterDown(),
}
