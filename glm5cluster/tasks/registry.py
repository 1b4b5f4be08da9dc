"""Every task a playbook may name, listed explicitly (no discovery, no globals).

Each entry names the module and class of a task; the module is imported (and the task built)
only when a playbook names the task, so a playbook that uses five tasks does not import the GPU
stack, the runtime or the weights code (start-up time: benchmarks/results/startup.md). Names
that share an entry share one task object. Other modules' tasks are added here, one line each.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from glm5cluster.tasks.base import Params, Task

# name -> "module:Class" (module relative to glm5cluster.tasks)
SPECS: Mapping[str, str] = {
    "facts": "probe:FactsTask",
    "command": "probe:CommandTask",
    "probe": "probe:CommandTask",  # the same task; reads better for read-only checks
    "file": "files:FileTask",
    "directory": "files:DirectoryTask",
    "systemd_unit": "systemd:SystemdUnitTask",
    "disk_free": "probe:DiskFreeTask",
    # GPU stack, SGLang runtime, weights tools; gpu.reboot, sglang.flagcheck and
    # weights.stage are procedures (engine/procedures/__init__.py).
    "gpu.docker_engine": "container:DockerEngine",
    "gpu.nvidia_driver": "nvidia:NvidiaDriver",
    "gpu.nvidia_persistence": "nvidia:NvidiaPersistence",
    "gpu.fabric_manager": "nvidia:FabricManager",
    "gpu.nvidia_container_toolkit": "container:NvidiaContainerToolkit",
    "gpu.amd_rocm": "amd:AmdRocm",
    "gpu.verify": "reboot:GpuVerify",
    "sglang.image": "sglang_runtime:SglangImage",
    "sglang.venv": "sglang_runtime:SglangVenv",
    "router.venv": "router:RouterVenv",
    "router.unit": "router:RouterUnit",
    "weights.tools": "weights:WeightsTools",
}


class _LazyTasks(Mapping[str, Task[Any]]):
    """The registry as a mapping: names are known up front, a task is built on first lookup."""

    def __init__(self, specs: Mapping[str, str]) -> None:
        self._specs = specs
        self._built: dict[str, Task[Any]] = {}  # by spec, so aliases share one object

    def __getitem__(self, name: str) -> Task[Any]:
        spec = self._specs[name]
        task = self._built.get(spec)
        if task is None:
            module, _, cls = spec.partition(":")
            task = getattr(importlib.import_module(f"glm5cluster.tasks.{module}"), cls)()
            self._built[spec] = task
        return task

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


TASKS: Mapping[str, Task[Any]] = _LazyTasks(SPECS)


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
