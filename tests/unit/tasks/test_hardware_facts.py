"""Hardware facts come from the catalog only: the GPU-stack tasks read vendor, NVSwitch /
fabric manager need, the open-kernel-module requirement and memory from ``model/catalog.py``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from glm5cluster.facts.gpu_types import gpu_kind
from glm5cluster.facts.packages import GpuRow, StackState
from glm5cluster.model import catalog
from glm5cluster.model.inventory import GpuKind
from glm5cluster.tasks import gpu_stack as gs
from glm5cluster.tasks.reboot import health_problems


@dataclass
class Node:
    gpu_kind: GpuKind
    gpu_count: int = 8
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    node: Node
    inventory: object = None


@pytest.mark.parametrize("kind", list(catalog.CATALOG))
def test_tasks_follow_the_catalog(kind: GpuKind, monkeypatch: pytest.MonkeyPatch) -> None:
    prof = catalog.CATALOG[kind]
    ctx = Ctx(Node(kind))
    assert gs.vendor_of(ctx) == prof.vendor
    assert gs.has_nvswitch(ctx, StackState()) is prof.nvswitch_fabric_manager
    # flip the catalog's facts: the tasks follow
    flipped = replace(prof, nvswitch_fabric_manager=not prof.nvswitch_fabric_manager, memory_gb=prof.memory_gb + 1)
    monkeypatch.setitem(catalog.CATALOG, kind, flipped)
    assert gs.profile_of(ctx).min_memory_mib == int((prof.memory_gb + 1) * 970)
    assert gs.has_nvswitch(ctx, StackState()) is not prof.nvswitch_fabric_manager
    assert gpu_kind(f"Vendor {kind.value} 99GB") is kind  # the fact parser knows every catalog kind


def test_min_memory_is_below_what_real_gpus_report() -> None:
    # nvidia-smi --query-gpu=memory.total on H100 80GB HBM3 / H200 / B200 (MiB)
    for kind, reported in ((GpuKind.H100, 81559), (GpuKind.H200, 143771), (GpuKind.B200, 183359)):
        assert 0.95 * reported < catalog.gpu_profile(kind).min_memory_mib < reported


def test_health_reads_memory_and_open_modules_from_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    prof = catalog.gpu_profile(GpuKind.H200)
    monkeypatch.setitem(catalog.CATALOG, GpuKind.H200, replace(prof, memory_gb=200, open_kernel_modules_required=True))
    st = _smi_state(GpuKind.H200, 143771, loaded_open=False)
    problems = health_problems(st, Ctx(Node(GpuKind.H200, labels={"nvswitch": "false"})), "580")
    assert any("H200 needs >= 194000" in p for p in problems), problems
    assert any("proprietary kernel modules loaded on H200" in p for p in problems), problems


def _smi_state(kind: GpuKind, mib: int, loaded_open: bool) -> StackState:
    gpus = tuple(GpuRow(i, f"NVIDIA {kind.value}", mib, "580.95.05", True) for i in range(8))
    return StackState(smi_ok=True, gpus=gpus, loaded_driver="580.95.05", loaded_open=loaded_open)


def test_the_gpu_kind_enum_holds_no_hardware_fact() -> None:
    # the vendor (and every other fact) has one source, the catalog: the enum is names only
    facts = {name for name, v in vars(GpuKind).items() if isinstance(v, property | staticmethod | classmethod)}
    assert facts == set(), f"GpuKind duplicates the catalog: {sorted(facts)}"
    assert {catalog.gpu_profile(k).vendor for k in GpuKind} == {"nvidia", "amd"}
