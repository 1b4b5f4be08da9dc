"""Pure parsers of what the installed SGLang's own benchmark clients print.

Formats (real SGLang 0.5.23 wheel):
- ``sglang.bench_serving`` (``sglang/benchmark/serving.py:1681-1845``): a block opened by
  ``==== Serving Benchmark Result ====`` of ``"{:<40} {:<10}"`` label/value lines, closed by a
  line of 50 ``=``. ``Accept length:`` only when ``/server_info`` reports it (1642-1660,1747).
- ``sglang.test.few_shot_gsm8k`` (``few_shot_gsm8k.py:136-139``): ``Accuracy: 0.955``,
  ``Invalid: 0.000``, ``Latency: 21.493 s``, ``Output throughput: 1402.117 token/s``.
- ``sglang.test.run_eval`` (``run_eval.py:190-197``): ``Total latency: 24.551 s``,
  ``Score: 0.955``, ``Output throughput: ... token/s``.
- ``sglang.test.sgl_eval_utils.run_sgl_eval`` (``sgl_eval_utils.py:222``):
  ``sgl-eval mmlu: {'score': ..., 'accuracy': ..., 'invalid': ..., 'latency': ..., ...}``.
"""

from __future__ import annotations

import re

from glm5cluster.bench.records import AccuracyResult, ServingResult


class ParseError(ValueError):
    """The client's output holds no (complete) result block."""


_HEADER = re.compile(r"^=+ Serving Benchmark Result =+\s*$")
_END = re.compile(r"^={50}\s*$")
_LINE = re.compile(r"^(?P<label>[^:]+):\s+(?P<value>\S+)")

# label printed by serving.py -> ServingResult field
_SERVING_FIELDS = {
    "Successful requests": "completed",
    "Benchmark duration (s)": "duration_s",
    "Total input tokens": "total_input_tokens",
    "Total generated tokens": "total_output_tokens",
    "Request throughput (req/s)": "request_throughput",
    "Input token throughput (tok/s)": "input_throughput",
    "Output token throughput (tok/s)": "output_throughput",
    "Total token throughput (tok/s)": "total_throughput",
    "Concurrency": "concurrency",
    "Max request concurrency": "max_concurrency",
    "Accept length": "accept_length",
    "Mean E2E Latency (ms)": "mean_e2e_ms",
    "Median E2E Latency (ms)": "median_e2e_ms",
    "P99 E2E Latency (ms)": "p99_e2e_ms",
    "Mean TTFT (ms)": "mean_ttft_ms",
    "Median TTFT (ms)": "median_ttft_ms",
    "P99 TTFT (ms)": "p99_ttft_ms",
    "Mean TPOT (ms)": "mean_tpot_ms",
    "Median TPOT (ms)": "median_tpot_ms",
    "P99 TPOT (ms)": "p99_tpot_ms",
    "Mean ITL (ms)": "mean_itl_ms",
    "Median ITL (ms)": "median_itl_ms",
    "P99 ITL (ms)": "p99_itl_ms",
}
_INT_FIELDS = {"completed", "total_input_tokens", "total_output_tokens", "max_concurrency"}
_OPTIONAL = {"max_concurrency", "accept_length"}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ParseError(f"not a number: {text!r}") from None


def parse_serving(text: str) -> ServingResult:
    """The last complete result block in ``text`` (a run prints one per request rate)."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if _HEADER.match(ln.strip())]
    if not starts:
        raise ParseError("no 'Serving Benchmark Result' block in the client's output")
    block: list[str] = []
    for ln in lines[starts[-1] + 1:]:
        if _END.match(ln.strip()):
            break
        block.append(ln)
    else:
        raise ParseError("the 'Serving Benchmark Result' block is cut short (client interrupted?)")
    values: dict[str, float | int | None] = {}
    for ln in block:
        m = _LINE.match(ln.strip())
        if not m or m["label"] not in _SERVING_FIELDS:
            continue
        name = _SERVING_FIELDS[m["label"]]
        raw = m["value"]
        if name == "max_concurrency" and raw == "not":  # "not set"
            values[name] = None
        elif name in _INT_FIELDS:
            values[name] = int(_number(raw))
        else:
            values[name] = _number(raw)
    missing = sorted(f for f in _SERVING_FIELDS.values() if f not in values and f not in _OPTIONAL)
    if missing:
        raise ParseError(f"the result block lacks {', '.join(missing)}")
    return ServingResult(**values)  # type: ignore[arg-type]


def _find(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text, flags=re.MULTILINE)
    return _number(found[-1]) if found else None


_NUM = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def parse_gsm8k(text: str) -> AccuracyResult:
    """``few_shot_gsm8k`` (Accuracy/Invalid/Latency) or ``run_eval`` (Score/Total latency)."""
    acc = _find(rf"^Accuracy: {_NUM}\s*$", text)
    if acc is not None:
        return AccuracyResult(accuracy=acc, invalid=_find(rf"^Invalid: {_NUM}\s*$", text),
                              latency_s=_find(rf"^Latency: {_NUM} s\s*$", text),
                              output_throughput=_find(rf"^Output throughput: {_NUM} token/s\s*$", text))
    score = _find(rf"^Score: {_NUM}\s*$", text)
    if score is not None:
        return AccuracyResult(accuracy=score, latency_s=_find(rf"^Total latency: {_NUM} s\s*$", text),
                              output_throughput=_find(rf"^Output throughput: {_NUM} token/s\s*$", text))
    raise ParseError("no 'Accuracy:' or 'Score:' line in the GSM8K client's output")


def _dict_value(body: str, key: str) -> float | None:
    # values are floats, numpy scalars (np.float64(0.877)) or None
    m = re.search(rf"'{key}': (?:np\.float\d+\()?{_NUM}", body)
    return _number(m.group(1)) if m else None


def parse_sgl_eval(text: str, name: str = "mmlu") -> AccuracyResult:
    """The ``sgl-eval <name>: {...}`` metrics line of ``run_sgl_eval``."""
    found = re.findall(rf"^sgl-eval {re.escape(name)}: (\{{.*\}})\s*$", text, flags=re.MULTILINE)
    if not found:
        raise ParseError(f"no 'sgl-eval {name}: {{...}}' line in the client's output")
    body = found[-1]
    acc = _dict_value(body, "accuracy")
    if acc is None:
        acc = _dict_value(body, "score")
    if acc is None:
        raise ParseError(f"the sgl-eval {name} metrics carry no accuracy or score")
    return AccuracyResult(accuracy=acc, invalid=_dict_value(body, "invalid"),
                          latency_s=_dict_value(body, "latency"),
                          output_throughput=_dict_value(body, "output_throughput"))
