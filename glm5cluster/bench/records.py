"""Typed records of one benchmark: what each client printed, parsed (``ServingResult`` for
``sglang.bench_serving``, ``AccuracyResult`` for the GSM8K/MMLU scripts), and one kept run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum


class Suite(StrEnum):
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    GSM8K = "gsm8k"
    MMLU = "mmlu"

    @property
    def is_serving(self) -> bool:
        return self in (Suite.LATENCY, Suite.THROUGHPUT)


ALL_SUITES: tuple[Suite, ...] = (Suite.LATENCY, Suite.THROUGHPUT, Suite.GSM8K, Suite.MMLU)


@dataclass(frozen=True)
class ServingResult:
    """The "Serving Benchmark Result" block of ``sglang.bench_serving`` (0.5.23:
    ``sglang/benchmark/serving.py:1681-1845``). Times in ms, throughputs per second."""

    completed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    input_throughput: float
    output_throughput: float
    total_throughput: float
    concurrency: float
    mean_e2e_ms: float
    median_e2e_ms: float
    p99_e2e_ms: float
    mean_ttft_ms: float
    median_ttft_ms: float
    p99_ttft_ms: float
    mean_tpot_ms: float
    median_tpot_ms: float
    p99_tpot_ms: float
    mean_itl_ms: float
    median_itl_ms: float
    p99_itl_ms: float
    max_concurrency: int | None = None  # "not set" -> None
    accept_length: float | None = None  # only with speculative decoding (server_info)

    def metrics(self) -> dict[str, float]:
        return {f.name: float(v) for f in fields(self)
                if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class AccuracyResult:
    """An accuracy script's result: GSM8K (``few_shot_gsm8k`` or ``run_eval``) or MMLU
    (``sgl_eval_utils.run_sgl_eval``). ``accuracy`` is a fraction (0.955)."""

    accuracy: float
    latency_s: float | None = None
    invalid: float | None = None
    output_throughput: float | None = None

    def metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class HardwareRow:
    """The hardware row a result belongs to (the cookbook publishes per row)."""

    gpu: str  # H200, MI355X, ...
    gpus_per_node: int
    nnodes: int
    tp: int
    precision: str  # fp8 | bf16
    speculative: bool

    def label(self) -> str:
        nodes = f"{self.nnodes}x" if self.nnodes > 1 else ""
        spec = ", EAGLE" if self.speculative else ""
        return f"{nodes}{self.gpus_per_node}x{self.gpu} {self.precision.upper()} tp{self.tp}{spec}"


@dataclass(frozen=True)
class SuiteRun:
    """One suite on one replica: the exact command (secrets masked), and its parsed metrics or
    why there are none."""

    suite: Suite
    replica: int
    command: str
    params: dict[str, str]  # the parameters that make runs comparable (num prompts, lens, ...)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.metrics)


@dataclass(frozen=True)
class BenchRun:
    """Everything one ``glm5cluster bench`` kept: ``~/.glm5cluster/bench/<cluster>/<stamp>.json``."""

    cluster: str
    stamp: str  # UTC, sortable: 20261130T120102Z
    config_digest: str
    sglang_version: str
    hardware: HardwareRow
    results: tuple[SuiteRun, ...]
    via_router: bool = False
    gate_passed: bool | None = None  # None: not gated

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["results"] = [asdict(r) | {"suite": r.suite.value} for r in self.results]
        return d

    @classmethod
    def from_json(cls, d: dict[str, object]) -> BenchRun:
        hw = d["hardware"]
        res = d["results"]
        if not isinstance(hw, dict) or not isinstance(res, list):
            raise ValueError("not a bench run record")
        runs = tuple(SuiteRun(suite=Suite(r["suite"]), replica=int(r["replica"]), command=str(r["command"]),
                              params={str(k): str(v) for k, v in dict(r.get("params") or {}).items()},
                              metrics={str(k): float(v) for k, v in dict(r.get("metrics") or {}).items()},
                              error=str(r.get("error") or ""), duration_s=float(r.get("duration_s") or 0.0))
                     for r in res if isinstance(r, dict))
        gate = d.get("gate_passed")
        return cls(cluster=str(d["cluster"]), stamp=str(d["stamp"]), config_digest=str(d["config_digest"]),
                   sglang_version=str(d["sglang_version"]), hardware=HardwareRow(**hw), results=runs,
                   via_router=bool(d.get("via_router", False)),
                   gate_passed=None if gate is None else bool(gate))
