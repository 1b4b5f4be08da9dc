"""Every task a playbook may name, listed explicitly (no discovery, no globals).

Other modules' tasks are added here by import, one line each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glm5cluster.tasks.amd import AmdRocm
from glm5cluster.tasks.base import Params, Task
from glm5cluster.tasks.container import DockerEngine, NvidiaContainerToolkit
from glm5cluster.tasks.files import DirectoryTask, FileTask
from glm5cluster.tasks.nvidia import FabricManager, NvidiaDriver, NvidiaPersistence
from glm5cluster.tasks.probe import CommandTask, DiskFreeTask, FactsTask
from glm5cluster.tasks.reboot import GpuVerify
from glm5cluster.tasks.router import RouterUnit, RouterVenv
from glm5cluster.tasks.sglang_runtime import SglangImage, SglangVenv
from glm5cluster.tasks.systemd import SystemdUnitTask
from glm5cluster.tasks.weights import WeightsTools

_command = CommandTask()

TASKS: Mapping[str, Task[Any]] = {
    "facts": FactsTask(),
    "command": _command,
    "probe": _command,  # the same task; reads better for read-only checks
    "file": FileTask(),
    "directory": DirectoryTask(),
    "systemd_unit": SystemdUnitTask(),
    "disk_free": DiskFreeTask(),
    # GPU stack, SGLang runtime, weights tools; gpu.reboot, sglang.flagcheck and
    # weights.stage are procedures (engine/procedures/__init__.py).
    "gpu.docker_engine": DockerEngine(),
    "gpu.nvidia_driver": NvidiaDriver(),
    "gpu.nvidia_persistence": NvidiaPersistence(),
    "gpu.fabric_manager": FabricManager(),
    "gpu.nvidia_container_toolkit": NvidiaContainerToolkit(),
    "gpu.amd_rocm": AmdRocm(),
    "gpu.verify": GpuVerify(),
    "sglang.image": SglangImage(),
    "sglang.venv": SglangVenv(),
    "router.venv": RouterVenv(),
    "router.unit": RouterUnit(),
    "weights.tools": WeightsTools(),
}


def get(task_name: str) -> Task[Any]:
    try:
        return TASKS[task_name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise KeyError(f"unknown task {task_name!r}; known tasks: {known}") from None


def check_params(task_name: str, raw: Mapping[str, Any]) -> Params:
    """Validate a playbook step's raw parameters against the task's ``Params`` model.

    Raises ``KeyError`` for an unknown task and ``pydantic.ValidationError`` for bad parameters
    (unknown keys included: every ``Params`` forbids extras)."""
    return get(task_name).Params.model_validate(dict(raw))
