"""Comparison with the cookbook's figures and the last good run; the gate's tolerances."""

from __future__ import annotations

import pytest

from glm5cluster.bench.compare import (
    Tolerance,
    Verdict,
    compare,
    gate_passes,
    published_for,
    regression,
)
from glm5cluster.bench.records import HardwareRow, Suite
from glm5cluster.bench.suites import SuiteParams

from .helpers import H200_FP8, bench_run

TOL = Tolerance()
LAT = {"output_throughput": 117.96, "mean_ttft_ms": 290.88, "mean_tpot_ms": 7.54, "accept_length": 3.48}


def checks(comp, metric):  # type: ignore[no-untyped-def]
    return next(c for c in comp.checks if c.metric == metric)


def test_published_figure_only_for_the_same_row_and_parameters() -> None:
    lat = SuiteParams().for_suite(Suite.LATENCY)
    assert published_for(H200_FP8, Suite.LATENCY, lat) is not None
    assert published_for(H200_FP8, Suite.LATENCY, lat | {"num_prompts": "5"}) is None
    no_eagle = HardwareRow("H200", 8, 1, 8, "fp8", False)
    assert published_for(no_eagle, Suite.LATENCY, lat) is None  # the cookbook measured with EAGLE
    assert published_for(no_eagle, Suite.GSM8K, {"num_questions": "200"}) is not None
    bf16 = HardwareRow("H200", 8, 2, 16, "bf16", True)
    assert published_for(bf16, Suite.LATENCY, lat) is None
    amd = HardwareRow("MI355X", 8, 1, 8, "bf16", False)
    gsm = published_for(amd, Suite.GSM8K, {"num_questions": "200"})
    assert gsm is not None and gsm.metrics["accuracy"] == 0.970


@pytest.mark.parametrize(("metric", "value", "base", "bad"), [
    ("accuracy", 0.935, 0.955, False),  # exactly 2 points: within tolerance
    ("accuracy", 0.934, 0.955, True),
    ("output_throughput", 90.0, 100.0, False),
    ("output_throughput", 89.9, 100.0, True),
    ("request_throughput", 2.0, 2.43, True),
    ("mean_tpot_ms", 8.29, 7.54, False),
    ("mean_tpot_ms", 8.30, 7.54, True),
    ("mean_ttft_ms", 9999.0, 290.88, False),  # not gated
    ("output_throughput", 200.0, 100.0, False),  # better is never a regression
])
def test_tolerances(metric: str, value: float, base: float, bad: bool) -> None:
    assert bool(regression(metric, value, base, TOL)) is bad


def test_custom_tolerance() -> None:
    assert regression("output_throughput", 96.0, 100.0, Tolerance(throughput_pct=3.0))
    assert not regression("accuracy", 0.90, 0.955, Tolerance(accuracy_points=6.0))


def test_cookbook_match_passes_and_regression_fails() -> None:
    ok = bench_run("20260101T000000Z", {Suite.LATENCY: LAT, Suite.GSM8K: {"accuracy": 0.955}})
    comps = compare(ok, [], TOL)
    assert gate_passes(comps)
    assert comps[0].published_note.startswith("cookbook H200 FP8 tp8")
    slow = bench_run("20260101T000000Z", {Suite.LATENCY: LAT | {"output_throughput": 100.0},
                                          Suite.GSM8K: {"accuracy": 0.90}})
    comps = compare(slow, [], TOL)
    assert not gate_passes(comps)
    assert checks(comps[0], "output_throughput").verdict is Verdict.REGRESSION
    assert "vs cookbook" in checks(comps[1], "accuracy").reason


def test_previous_good_run_of_the_same_config_is_the_baseline() -> None:
    bf16 = HardwareRow("H200", 8, 2, 16, "bf16", True)
    first = bench_run("20260101T000000Z", {Suite.LATENCY: {**LAT, "output_throughput": 50.0}}, hw=bf16)
    bad = bench_run("20260102T000000Z", {Suite.LATENCY: {**LAT, "output_throughput": 10.0}}, hw=bf16,
                    gate_passed=False)
    other = bench_run("20260103T000000Z", {Suite.LATENCY: {**LAT, "output_throughput": 500.0}}, hw=bf16,
                      digest="other")
    now = bench_run("20260104T000000Z", {Suite.LATENCY: {**LAT, "output_throughput": 44.0}}, hw=bf16)
    comps = compare(now, [first, bad, other], TOL)
    assert comps[0].published_note == "no published figure"
    assert comps[0].previous_stamp == "20260101T000000Z"  # not the failed one, not another config
    c = checks(comps[0], "output_throughput")
    assert c.previous == 50.0 and c.verdict is Verdict.REGRESSION and "vs previous" in c.reason
    assert not gate_passes(comps)


def test_different_parameters_are_not_compared() -> None:
    bf16 = HardwareRow("H200", 8, 2, 16, "bf16", True)
    lat = SuiteParams().for_suite(Suite.LATENCY)
    first = bench_run("20260101T000000Z", {Suite.LATENCY: LAT}, hw=bf16)
    now = bench_run("20260102T000000Z", {Suite.LATENCY: {**LAT, "output_throughput": 1.0}}, hw=bf16,
                    params={Suite.LATENCY: lat | {"num_prompts": "3"}})
    comps = compare(now, [first], TOL)
    assert comps[0].previous_stamp is None
    assert checks(comps[0], "output_throughput").verdict is Verdict.NO_BASELINE
    assert gate_passes(comps)


def test_failed_suite_fails_the_gate() -> None:
    from dataclasses import replace

    run = bench_run("20260101T000000Z", {Suite.GSM8K: {}})
    run = replace(run, results=(replace(run.results[0], error="client died"),))
    assert not gate_passes(compare(run, [], TOL))
