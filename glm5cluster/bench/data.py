"""Local data files for air-gapped sites, checked before anything runs: the GSM8K test file
(JSON lines with ``question`` and ``answer``, the format ``few_shot_gsm8k`` reads,
``few_shot_gsm8k.py:73-86``), a ShareGPT JSON file for ``bench_serving --dataset-name random``
(which otherwise downloads ShareGPT, ``benchmark/datasets/random.py:86-92``) and sgl-eval's
prepared MMLU file (which it otherwise downloads from the hub and prepares)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glm5cluster.errors import InputError

MAX_BYTES = 512 * 1024 * 1024


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InputError(f"{path}: {what}: no such file", hint="give a local file (--data-path)")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise InputError(f"{path}: {what}: {size} bytes is too large for a benchmark data file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: {what}: cannot read ({e.strerror})") from None


def _jsonl(path: Path, what: str, need: int | None, fmt: str,
           check: Callable[[int, Any], None]) -> bytes:
    """The file's bytes when every non-empty line is a JSON object that ``check`` (line number,
    row) accepts, with at least ``need`` rows; else ``InputError`` at file:line."""
    data = _read(path, what)
    rows = 0
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n}: not a JSON object ({e.msg})",
                             hint=f"one JSON object per line: {fmt}") from None
        check(n, row)
        rows += 1
    if rows == 0:
        raise InputError(f"{path}: {what} file has no questions")
    if need is not None and rows < need:
        raise InputError(f"{path}: has {rows} questions, --num-questions asks for {need}",
                         hint=f"pass --num-questions {rows} or a larger file")
    return data


def gsm8k_file(path: Path, need: int | None = None) -> bytes:
    """The file's bytes when every line is a JSON object with a string ``question`` and an
    ``answer`` holding a number (the client asserts that); else ``InputError`` at file:line."""
    def check(n: int, row: Any) -> None:
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) \
                or not isinstance(row.get("answer"), str):
            raise InputError(f"{path}:{n}: needs string fields question and answer",
                             hint="the GSM8K test.jsonl format")
        if not re.search(r"\d", row["answer"].replace(",", "")):
            raise InputError(f"{path}:{n}: answer has no number",
                             hint="GSM8K answers end with '#### <number>'")

    return _jsonl(path, "GSM8K data", need, '{"question": ..., "answer": ...}', check)


def mmlu_file(path: Path, need: int | None = None) -> bytes:
    """sgl-eval's prepared MMLU ``test.jsonl`` (what its ``prepare`` writes from the Hendrycks
    archive: JSON lines with a string ``problem``, the question and its lettered options, and
    ``expected_answer`` A-D); else ``InputError`` at file:line."""
    def check(n: int, row: Any) -> None:
        if not isinstance(row, dict) or not isinstance(row.get("problem"), str) \
                or row.get("expected_answer") not in ("A", "B", "C", "D"):
            raise InputError(f"{path}:{n}: needs a string problem and an expected_answer A-D",
                             hint="sgl-eval's prepared MMLU test.jsonl (fields problem, expected_answer)")

    return _jsonl(path, "MMLU data", need, "sgl-eval's prepared MMLU test.jsonl", check)


def sharegpt_file(path: Path) -> bytes:
    data = _read(path, "ShareGPT data")
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not JSON ({e.msg})", hint="a ShareGPT JSON list") from None
    if not isinstance(doc, list) or not doc:
        raise InputError(f"{path}: ShareGPT data must be a non-empty JSON list of conversations")
    return data
