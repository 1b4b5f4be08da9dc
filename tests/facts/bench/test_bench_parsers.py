"""The bench parsers on outputs derived from the real SGLang 0.5.23 clients' print statements
(see SOURCES.md beside this file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from glm5cluster.bench.parse import ParseError, parse_gsm8k, parse_serving, parse_sgl_eval

HERE = Path(__file__).parent


def text(name: str) -> str:
    return (HERE / name).read_text()


def test_latency_block_has_the_cookbook_figures() -> None:
    r = parse_serving(text("serving_latency.txt"))
    assert r.output_throughput == 117.96
    assert r.mean_ttft_ms == 290.88
    assert r.mean_tpot_ms == 7.54
    assert r.accept_length == 3.48
    assert r.max_concurrency == 1
    assert r.completed == 10 and r.total_output_tokens == 4986
    assert (r.median_ttft_ms, r.p99_ttft_ms, r.p99_tpot_ms, r.p99_itl_ms) == (281.02, 371.95, 8.11, 41.7)


def test_throughput_block_without_accept_length_and_with_cache_report() -> None:
    r = parse_serving(text("serving_throughput.txt"))
    assert (r.request_throughput, r.output_throughput, r.total_throughput) == (2.43, 1214.97, 2435.38)
    assert r.mean_ttft_ms == 20613.80 and r.mean_tpot_ms == 38.73
    assert r.accept_length is None
    assert "accept_length" not in r.metrics()
    assert r.max_concurrency == 100


def test_not_set_concurrency_is_none() -> None:
    body = text("serving_latency.txt").replace("Max request concurrency:                 1         ",
                                               "Max request concurrency:                 not set   ")
    assert parse_serving(body).max_concurrency is None


def test_last_block_wins() -> None:
    two = text("serving_throughput.txt") + text("serving_latency.txt")
    assert parse_serving(two).output_throughput == 117.96


@pytest.mark.parametrize("cut", ["P99 ITL", "Max ITL", "=" * 50])
def test_cut_short_block_is_refused(cut: str) -> None:
    body = text("serving_latency.txt")
    with pytest.raises(ParseError):
        parse_serving(body[: body.rindex(cut)])


def test_no_block() -> None:
    with pytest.raises(ParseError, match="no 'Serving Benchmark Result'"):
        parse_serving(text("gsm8k_failed.txt"))


def test_gsm8k_few_shot_format() -> None:
    r = parse_gsm8k(text("gsm8k_few_shot.txt"))
    assert (r.accuracy, r.invalid, r.latency_s, r.output_throughput) == (0.955, 0.0, 21.493, 1402.117)


def test_gsm8k_run_eval_format() -> None:
    r = parse_gsm8k(text("gsm8k_run_eval.txt"))
    assert (r.accuracy, r.invalid, r.latency_s, r.output_throughput) == (0.955, None, 24.551, 1288.31)


def test_gsm8k_failed_client() -> None:
    with pytest.raises(ParseError):
        parse_gsm8k(text("gsm8k_failed.txt"))


def test_mmlu_sgl_eval_line() -> None:
    r = parse_sgl_eval(text("mmlu_sgl_eval.txt"), "mmlu")
    assert (r.accuracy, r.invalid, r.latency_s, r.output_throughput) == (0.877, 0.0021, 552.31, 3120.5)


def test_mmlu_numpy_scalars() -> None:
    line = "sgl-eval mmlu: {'score': np.float64(0.861), 'accuracy': np.float64(0.861), 'invalid': 0.0, 'latency': 12.5}\n"
    assert parse_sgl_eval(line).accuracy == 0.861


def test_mmlu_missing() -> None:
    with pytest.raises(ParseError, match="sgl-eval mmlu"):
        parse_sgl_eval(text("gsm8k_few_shot.txt"))


# Outputs of the real 0.5.23 clients (SOURCES.md, "Real captures").
def test_real_bench_serving_output() -> None:
    r = parse_serving(text("real_serving_latency.txt"))
    assert (r.completed, r.max_concurrency, r.total_input_tokens, r.total_output_tokens) == (10, 1, 365, 148)
    assert (r.request_throughput, r.output_throughput, r.total_throughput) == (9.41, 139.32, 482.93)
    assert (r.mean_ttft_ms, r.mean_tpot_ms, r.p99_itl_ms, r.accept_length) == (36.11, 4.88, 10.14, 3.48)


def test_real_few_shot_gsm8k_output() -> None:
    r = parse_gsm8k(text("real_gsm8k_few_shot.txt"))
    assert (r.accuracy, r.invalid, r.latency_s, r.output_throughput) == (0.8, 0.0, 0.108, 1670.171)


def test_real_run_eval_gsm8k_output() -> None:
    r = parse_gsm8k(text("real_gsm8k_run_eval.txt"))
    assert (r.accuracy, r.invalid, r.latency_s, r.output_throughput) == (0.8, None, 0.867, 207.538)


def test_real_sgl_eval_mmlu_output() -> None:
    r = parse_sgl_eval(text("real_mmlu_sgl_eval.txt"), "mmlu")
    assert (r.accuracy, r.invalid) == (1.0, 0.0)
    assert r.latency_s == pytest.approx(1.567, abs=1e-3) and r.output_throughput == pytest.approx(357.32, abs=1e-2)
