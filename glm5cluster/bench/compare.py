"""Compare a run with the cookbook's published figures and with the last good run of the same
config, and gate on regressions beyond tolerance.

Published figures: the SGLang cookbook's GLM-5 page (8xH200, GLM-5-FP8, tp8, EAGLE on) for
``sglang.bench_serving`` --dataset-name random 1000/1000 at concurrency 1 (10 prompts) and 100
(1000 prompts), GSM8K (``benchmark/gsm8k/bench_sglang.py``, 200 questions) and MMLU
(``benchmark/mmlu/bench_sglang.py``); GSM8K also for AMD MI325X/MI355X BF16 tp8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from glm5cluster.bench.records import BenchRun, HardwareRow, Suite, SuiteRun

# metric -> True when higher is better
DIRECTION: dict[str, bool] = {
    "request_throughput": True, "input_throughput": True, "output_throughput": True,
    "total_throughput": True, "accept_length": True, "accuracy": True,
    "mean_ttft_ms": False, "median_ttft_ms": False, "p99_ttft_ms": False,
    "mean_tpot_ms": False, "median_tpot_ms": False, "p99_tpot_ms": False,
    "mean_itl_ms": False, "median_itl_ms": False, "p99_itl_ms": False,
    "mean_e2e_ms": False, "median_e2e_ms": False, "p99_e2e_ms": False,
    "invalid": False, "latency_s": False,
}
# what the table shows per suite, in order
HEADLINE: dict[Suite, tuple[str, ...]] = {
    Suite.LATENCY: ("output_throughput", "mean_ttft_ms", "mean_tpot_ms", "accept_length"),
    Suite.THROUGHPUT: ("request_throughput", "output_throughput", "total_throughput",
                       "mean_ttft_ms", "mean_tpot_ms"),
    Suite.GSM8K: ("accuracy", "invalid", "latency_s"),
    Suite.MMLU: ("accuracy", "latency_s"),
}
GATED_THROUGHPUT = ("request_throughput", "output_throughput", "total_throughput")
GATED_TPOT = ("mean_tpot_ms",)
GATED_ACCURACY = ("accuracy",)


@dataclass(frozen=True)
class Published:
    gpu: tuple[str, ...]
    precision: str
    tp: int
    suite: Suite
    params: Mapping[str, str]  # the cookbook's parameters (only comparable when they match)
    metrics: Mapping[str, float]
    speculative: bool | None = None  # serving figures were measured with EAGLE on


_SERVING = {"dataset": "random", "input_len": "1000", "output_len": "1000", "request_rate": "inf"}
PUBLISHED: tuple[Published, ...] = (
    Published(("H200",), "fp8", 8, Suite.LATENCY, _SERVING | {"num_prompts": "10", "max_concurrency": "1"},
              {"output_throughput": 117.96, "mean_ttft_ms": 290.88, "mean_tpot_ms": 7.54, "accept_length": 3.48},
              speculative=True),
    Published(("H200",), "fp8", 8, Suite.THROUGHPUT, _SERVING | {"num_prompts": "1000", "max_concurrency": "100"},
              {"request_throughput": 2.43, "output_throughput": 1214.97, "total_throughput": 2435.38,
               "mean_ttft_ms": 20613.80, "mean_tpot_ms": 38.73}, speculative=True),
    Published(("H200",), "fp8", 8, Suite.GSM8K, {"num_questions": "200"}, {"accuracy": 0.955}),
    Published(("H200",), "fp8", 8, Suite.MMLU, {}, {"accuracy": 0.877}),
    Published(("MI325X", "MI355X"), "bf16", 8, Suite.GSM8K, {"num_questions": "200"}, {"accuracy": 0.970}),
)


@dataclass(frozen=True)
class Tolerance:
    accuracy_points: float = 2.0  # absolute, in percentage points
    throughput_pct: float = 10.0  # drop
    tpot_pct: float = 10.0  # rise


def published_for(hw: HardwareRow, suite: Suite, params: Mapping[str, str]) -> Published | None:
    """The cookbook figure for this hardware row, suite and parameters, if it publishes one."""
    for p in PUBLISHED:
        if hw.gpu in p.gpu and hw.precision == p.precision and hw.tp == p.tp and p.suite is suite \
                and p.speculative in (None, hw.speculative) and all(params.get(k) == v for k, v in p.params.items()):
            return p
    return None


class Verdict(StrEnum):
    OK = "ok"
    REGRESSION = "regression"
    NO_BASELINE = "no baseline"


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    value: float
    published: float | None
    previous: float | None
    verdict: Verdict
    reason: str = ""


@dataclass(frozen=True)
class SuiteComparison:
    run: SuiteRun
    published_note: str  # "cookbook 8xH200 FP8 tp8" or "no published figure"
    previous_stamp: str | None
    checks: tuple[MetricCheck, ...]

    @property
    def regressions(self) -> tuple[MetricCheck, ...]:
        return tuple(c for c in self.checks if c.verdict is Verdict.REGRESSION)


def regression(metric: str, value: float, base: float, tol: Tolerance) -> str:
    """Why ``value`` is a regression from ``base`` beyond tolerance, or ``""``."""
    if metric in GATED_ACCURACY:
        drop = (base - value) * 100
        return f"{drop:.1f} points below {base:.3f} (tolerance {tol.accuracy_points:g})" \
            if drop > tol.accuracy_points else ""
    if base <= 0:
        return ""
    change = (value - base) / base * 100
    if metric in GATED_THROUGHPUT and -change > tol.throughput_pct:
        return f"{-change:.1f}% below {base:g} (tolerance {tol.throughput_pct:g}%)"
    if metric in GATED_TPOT and change > tol.tpot_pct:
        return f"{change:.1f}% above {base:g} (tolerance {tol.tpot_pct:g}%)"
    return ""


def same_config(run: BenchRun, other: BenchRun) -> bool:
    return run.config_digest == other.config_digest and run.via_router == other.via_router


def previous_result(history: Sequence[BenchRun], run: BenchRun, sr: SuiteRun) -> tuple[str, SuiteRun] | None:
    """The latest earlier good result of the same config, suite, replica and parameters
    (a run whose gate failed is not a baseline)."""
    for old in reversed(history):
        if old is run or not same_config(run, old) or old.gate_passed is False:
            continue
        for r in old.results:
            if r.ok and r.suite is sr.suite and r.replica == sr.replica and r.params == sr.params:
                return old.stamp, r
    return None


def compare(run: BenchRun, history: Sequence[BenchRun], tol: Tolerance) -> tuple[SuiteComparison, ...]:
    out = []
    earlier = [h for h in history if h.stamp < run.stamp or (h.stamp == run.stamp and h is not run)]
    for sr in run.results:
        pub = published_for(run.hardware, sr.suite, sr.params)
        prev = previous_result(earlier, run, sr)
        note = (f"cookbook {'/'.join(pub.gpu)} {pub.precision.upper()} tp{pub.tp}" if pub
                else "no published figure")
        checks = []
        for metric in HEADLINE[sr.suite]:
            if metric not in sr.metrics:
                continue
            value = sr.metrics[metric]
            pv = pub.metrics.get(metric) if pub else None
            qv = prev[1].metrics.get(metric) if prev else None
            reasons = []
            if pv is not None and (why := regression(metric, value, pv, tol)):
                reasons.append("vs cookbook: " + why)
            if qv is not None and (why := regression(metric, value, qv, tol)):
                reasons.append("vs previous: " + why)
            gated = metric in GATED_ACCURACY + GATED_THROUGHPUT + GATED_TPOT
            verdict = Verdict.REGRESSION if reasons else (
                Verdict.OK if (pv is not None or qv is not None) or not gated else Verdict.NO_BASELINE)
            checks.append(MetricCheck(metric, value, pv, qv, verdict, "; ".join(reasons)))
        out.append(SuiteComparison(sr, note, prev[0] if prev else None, tuple(checks)))
    return tuple(out)


def gate_passes(comparisons: Sequence[SuiteComparison]) -> bool:
    """No regression beyond tolerance and no failed suite."""
    return all(c.run.ok and not c.regressions for c in comparisons)
