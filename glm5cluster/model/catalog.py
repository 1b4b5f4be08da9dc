"""The hardware catalog: the seed's tp table and the cookbook's per-hardware flags.

Source: the SGLang GLM-5 cookbook page (``docs/cookbook/autoregressive/GLM/GLM-5.mdx`` in
the sglang repository) and its command generator. Every GPU fact the code uses is here:
adding a kind is one row (``docs/adding-a-gpu.md``). Everything here is
version-neutral: the SGLang flag *spellings* live in ``glm5cluster.sglang.profiles``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from glm5cluster.errors import PlanError
from glm5cluster.model.inventory import GpuKind, Precision

Vendor = Literal["nvidia", "amd"]

# The cookbook's EAGLE/MTP settings (generator option "speculative decoding").
EAGLE_NUM_STEPS = 3
EAGLE_TOPK = 1
EAGLE_NUM_DRAFT_TOKENS = 4
# IndexCache (GLM-5-FP8 only): the cookbook's `--json-model-override-args` value.
INDEX_TOPK_PATTERN = "FFSFSSSFSSFFFSSSFFFSFSSSSSSFFSFFSFFSSFFFFFFSFFFFFSFFSSSSSSFSFFFSFSSSFSFFSFFSSS"
REASONING_PARSER = "glm45"
TOOL_CALL_PARSER = "glm47"
REPO_FOR = {Precision.FP8: "zai-org/GLM-5-FP8", Precision.BF16: "zai-org/GLM-5"}


@dataclass(frozen=True)
class BackendSettings:
    """Hardware x precision specific server settings, named by meaning, not by flag."""

    expert_parallel_size: int | None = None
    quantization: str | None = None
    attention_backend_dsa: bool = False  # `--attention-backend dsa` (launch era: `nsa`)
    dsa_decode_backend: str | None = None
    dsa_prefill_backend: str | None = None
    moe_runner_backend: str | None = None
    allreduce_fusion: bool = False  # flashinfer allreduce fusion
    trust_remote_code: bool = False
    chunked_prefill_size: int | None = None
    watchdog_timeout: int | None = None


NO_BACKENDS = BackendSettings()

B200_FP8 = BackendSettings(
    expert_parallel_size=1,
    quantization="fp8",
    attention_backend_dsa=True,
    dsa_decode_backend="trtllm",
    dsa_prefill_backend="trtllm",
    moe_runner_backend="flashinfer_trtllm",
    allreduce_fusion=True,
)
H200_FP8 = BackendSettings(allreduce_fusion=True)
AMD_BF16 = BackendSettings(
    trust_remote_code=True,
    dsa_prefill_backend="tilelang",
    dsa_decode_backend="tilelang",
    chunked_prefill_size=131072,
    watchdog_timeout=1200,  # "20 minutes for weight loading"
)


@dataclass(frozen=True)
class GpuProfile:
    """One GPU kind as the catalog knows it."""

    kind: GpuKind
    vendor: Vendor
    memory_gb: int
    tp_fp8: int | None  # None: not offered
    tp_bf16: int
    mem_fraction_static: float
    backends_fp8: BackendSettings
    backends_bf16: BackendSettings
    eagle_supported: bool
    nvswitch_fabric_manager: bool  # HGX boards: NVSwitch, needs nvidia-fabricmanager
    open_kernel_modules_required: bool  # Blackwell only runs on the open GPU kernel modules
    architecture: str

    @property
    def min_memory_mib(self) -> int:
        """The least total memory a healthy GPU of this kind reports, in MiB: 97% of
        ``memory_gb`` x 1000 (nvidia-smi reports H100 80GB 81559 MiB, H200 143771, B200 183359)."""
        return int(self.memory_gb * 970)

    @property
    def nvlink_subnet_manager(self) -> bool:
        """Blackwell HGX boards also run the NVLink subnet manager (nvlsm) next to fabric manager."""
        return self.nvswitch_fabric_manager and self.architecture == "blackwell"

    def tp_size(self, precision: Precision) -> int | None:
        return self.tp_fp8 if precision is Precision.FP8 else self.tp_bf16

    def backends(self, precision: Precision) -> BackendSettings:
        return self.backends_fp8 if precision is Precision.FP8 else self.backends_bf16


@dataclass(frozen=True)
class Deployment:
    """What the catalog prescribes for one GPU kind and one precision."""

    gpu: GpuProfile
    precision: Precision
    tp_size: int
    mem_fraction_static: float
    backends: BackendSettings
    eagle_supported: bool
    index_cache_supported: bool


def _nvidia(kind: GpuKind, mem: int, fp8: int, bf16: int, frac: float, fp8_backends: BackendSettings,
            arch: str, open_modules: bool = False) -> GpuProfile:
    return GpuProfile(kind, "nvidia", mem, fp8, bf16, frac, fp8_backends, NO_BACKENDS, True, True,
                      open_modules, arch)


def _amd(kind: GpuKind, mem: int, arch: str) -> GpuProfile:
    return GpuProfile(kind, "amd", mem, None, 8, 0.80, NO_BACKENDS, AMD_BF16, False, False, False, arch)


CATALOG: dict[GpuKind, GpuProfile] = {
    GpuKind.H100: _nvidia(GpuKind.H100, 80, 16, 32, 0.85, NO_BACKENDS, "hopper"),
    GpuKind.H200: _nvidia(GpuKind.H200, 141, 8, 16, 0.85, H200_FP8, "hopper"),
    GpuKind.B200: _nvidia(GpuKind.B200, 180, 8, 16, 0.9, B200_FP8, "blackwell", open_modules=True),
    GpuKind.MI300X: _amd(GpuKind.MI300X, 192, "gfx942"),
    GpuKind.MI325X: _amd(GpuKind.MI325X, 256, "gfx942"),
    GpuKind.MI355X: _amd(GpuKind.MI355X, 288, "gfx950"),
}


def allreduce_fusion_multi_node_ok(gpu: GpuProfile) -> bool:
    """FlashInfer allreduce fusion across nodes: only Blackwell (the MNNVL backend).

    Real SGLang 0.5.23 ``layers/flashinfer_comm_fusion.py:46-84`` (``_resolve_backend``): ``auto``
    with ``is_multi_node`` raises on anything but SM100, ``trtllm`` is single-node only and
    ``mnnvl`` on SM90 is single-node only; its own auto-enable
    (``arg_groups/overrides.py:955-1003``) skips Hopper when ``nnodes > 1``.
    """
    return gpu.architecture == "blackwell"


def gpu_profile(kind: GpuKind) -> GpuProfile:
    return CATALOG[kind]


def deployment(kind: GpuKind, precision: Precision) -> Deployment:
    """The cookbook's deployment for one hardware row; PlanError where none is offered."""
    gpu = CATALOG[kind]
    tp = gpu.tp_size(precision)
    if tp is None:
        raise PlanError(
            f"FP8 not verified on AMD: {kind.value} has no GLM-5-FP8 deployment in the cookbook",
            hint=f"use {REPO_FOR[Precision.BF16]} (BF16, tp={gpu.tp_bf16}) on {kind.value}",
            path="model.repo",
        )
    return Deployment(
        gpu=gpu,
        precision=precision,
        tp_size=tp,
        mem_fraction_static=gpu.mem_fraction_static,
        backends=gpu.backends(precision),
        eagle_supported=gpu.eagle_supported,
        index_cache_supported=precision is Precision.FP8,
    )


# ---- trust anchors: OpenPGP fingerprints of the vendors' repository signing keys ---------------
# A key fetched from a repository or mirror is installed only when every primary key in it is
# listed here (or in the inventory's override, for a mirror re-signed with a site key).
# NVIDIA CUDA repository key 3bf863cc (cuda-keyring 1.1; `NO_PUBKEY A4B469963BF863CC` when missing):
CUDA_REPO_KEY_FINGERPRINTS: tuple[str, ...] = ("EB693B3035CD5710E231E123A4B469963BF863CC",)
# https://nvidia.github.io/libnvidia-container/gpgkey (`NO_PUBKEY DDCAE044F796ECB0` when missing):
CONTAINER_TOOLKIT_KEY_FINGERPRINTS: tuple[str, ...] = ("C95B321B61E88C1809C4F759DDCAE044F796ECB0",)
# AMD ROCm repository key (https://repo.radeon.com/rocm/rocm.gpg.key):
ROCM_KEY_FINGERPRINTS: tuple[str, ...] = ("CA8BB4727A47B4D09B4EE8969386B48A1A693C5C",)


# ---- preflight: NCCL all-reduce bus bandwidth references (GB/s, large messages) ----------------
# Single node, 8 GPUs over NVLink/NVSwitch: Azure NHC's gates (ND H100 v5 460, ND H200 v5 431 GB/s;
# azurehpc-health-checks nd96isr_h200_v5.conf). Other kinds/counts: no published gate here, so the
# local phase is judged only when the inventory sets preflight.min_local_busbw_gbps.
LOCAL_BUSBW_GBPS: dict[tuple[GpuKind, int], float] = {(GpuKind.H100, 8): 460.0, (GpuKind.H200, 8): 431.0}
# Across nodes the NICs bound an all-reduce: NCCL's author gives 46-48 GB/s per 400G NDR NIC,
# 24 per 200G, 12 per 100G (github.com/NVIDIA/nccl-tests/issues/290 and /119); 2 nodes x 8 NDR
# measured 368.8 GB/s with NVLS off (github.com/NVIDIA/nccl-tests/issues/309) = 8 x 46. So the
# expectation is NIC count x speed, never the GPU model alone (4 RoCE NICs give ~35 GB/s on the same GPUs).
NIC_BUSBW_GBPS: dict[int, float] = {400: 46.0, 200: 24.0, 100: 12.0}
BUSBW_FAIL_BELOW = 0.80  # fail below 80 % of the expectation (field practice; inventory-tunable)


def nic_busbw_gbps(rate_gbit: int) -> float:
    """Expected all-reduce busbw one NIC of ``rate_gbit`` carries (GB/s)."""
    return NIC_BUSBW_GBPS.get(rate_gbit, rate_gbit * 0.115)


def expected_global_busbw(nics: int, rate_gbit: int) -> float | None:
    """Inter-node expectation from the NICs each node brings (None: no RDMA NIC known)."""
    return nics * nic_busbw_gbps(rate_gbit) if nics > 0 and rate_gbit > 0 else None
