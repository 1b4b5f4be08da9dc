"""The one masking function: known secret values and secret fields (SGLang's start-up
``server_args`` line, argv flags, environment lines, bearer headers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from glm5cluster import redact

# line 5 of a real SGLang 0.5.8.post1 node-0 log (see tests/facts/sglang_log/SOURCES.md)
REAL = (Path(__file__).resolve().parents[1] / "facts" / "sglang_log"
        / "h100x8-2node_deepseek-r1-tp16-decode_node0_part1_args-distinit-nccl.log")
KEY = "sk-glm5-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


def server_args_line() -> str:
    line = next(ln for ln in REAL.read_text().splitlines() if "server_args=ServerArgs(" in ln)
    assert "api_key=None, admin_api_key=None" in line
    return line


def test_server_args_repr_of_a_real_log_line_is_masked() -> None:
    line = server_args_line().replace("api_key=None, admin_api_key=None",
                                      f"api_key='{KEY}', admin_api_key=\"adm-{KEY}\"")
    got = redact.mask(line)
    assert KEY not in got
    assert "api_key='***', admin_api_key=\"***\"" in got
    assert got.replace("api_key='***', admin_api_key=\"***\"", "") == line.replace(
        f"api_key='{KEY}', admin_api_key=\"adm-{KEY}\"", "")  # nothing else touched


def test_no_key_set_is_left_as_it_is() -> None:
    line = server_args_line()
    assert redact.mask(line) == line


def test_0_5_23_dict_form_is_masked() -> None:
    # 0.5.23 logs f"server_args={_server_args_for_logging(server_args)}" (a dict of resolved values)
    line = f"[2026-05-01 10:00:00] server_args={{'model_path': 'zai-org/GLM-5-FP8', 'api_key': '{KEY}', " \
           "'admin_api_key': None, 'served_model_name': 'glm-5'}"
    got = redact.mask(line)
    assert KEY not in got and "'api_key': '***'" in got and "'admin_api_key': None" in got
    assert redact.mask(f'{{"api_key": "{KEY}", "hf_token": "hf_abcdef"}}') == '{"api_key": "***", "hf_token": "***"}'


@pytest.mark.parametrize("text,want", [
    (f"python -m sglang.launch_server --api-key {KEY} --tp 8", "python -m sglang.launch_server --api-key *** --tp 8"),
    (f"--api-key={KEY}", "--api-key=***"),
    (f"--admin-api-key '{KEY}'", "--admin-api-key '***'"),
    (f"GLM5_API_KEY={KEY}", "GLM5_API_KEY=***"),
    (f"HF_TOKEN='{KEY}' other=1", "HF_TOKEN='***' other=1"),
    (f"Authorization: Bearer {KEY}", "Authorization: Bearer ***"),
    ("api_key_env: GLM5_API_KEY", "api_key_env: GLM5_API_KEY"),
    ("max_total_tokens=4096, tokenizer_path='x'", "max_total_tokens=4096, tokenizer_path='x'"),
])
def test_field_forms(text: str, want: str) -> None:
    assert redact.mask(text) == want


def test_known_values_anywhere() -> None:
    redact.remember_env({"GLM5_API_KEY": KEY, "EMPTY": ""}, "GLM5_API_KEY", "EMPTY", None)
    assert redact.mask(f"curl: (22) 401 for key {KEY}!") == "curl: (22) 401 for key ***!"
    assert redact.mask("zzz-extra-secret in text", ["zzz-extra-secret"]) == "*** in text"
    redact.remember("ab")  # too short to mask safely
    assert redact.mask("abc") == "abc"
