"""What the benchmark clients measure on the simulated server: ``/generate`` (streamed and
not), latency knobs, question answering with a deterministic accuracy knob re-read from its
file, and the wheel carrying the real clients (copied from a real wheel at build time)."""

from __future__ import annotations

import json
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from glm5cluster.lab.sim.sglang_sim.build import BENCH_REQUIRES, CLIENT_FILES, build_wheel
from tests.unit.sim.conftest import free_port, http

pytestmark = pytest.mark.slow

QUESTIONS = [{"question": f"Ana has {i} apples and buys {i + 2} more. How many apples does Ana have?",
              "answer": f"{i}+{i + 2}={2 * i + 2}\n#### {2 * i + 2}"} for i in range(10)]
MMLU = [{"problem": f"What is {i} times 3?\n\nA) {3 * i}\nB) {3 * i + 1}\nC) {3 * i + 2}\nD) {3 * i + 3}",
         "expected_answer": "A"} for i in range(4)]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def server(launcher, model_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "bench.json"
    gsm = _write(tmp_path / "gsm8k.jsonl", QUESTIONS)
    mmlu = _write(tmp_path / "mmlu.jsonl", MMLU)
    cfg.write_text(json.dumps({"ttft_ms": 200, "tpot_ms": 20, "accept_length": 2.5, "accuracy": 1.0,
                               "questions": [str(gsm), str(mmlu)]}))
    port = free_port()
    rank = launcher(["--model-path", str(model_dir), "--tp-size", "8", "--host", "127.0.0.1", "--port", str(port),
                     "--speculative-algorithm", "EAGLE"], SGLANG_SIM_BENCH_CONFIG=str(cfg))
    rank.wait_for("The server is fired up and ready to roll!")
    return f"http://127.0.0.1:{port}", cfg


def _answer(base: str, i: int) -> str:
    prompt = "".join(f"Question: {q['question']}\nAnswer: {q['answer']}\n\n" for q in QUESTIONS[:3])
    status, body = http(base + "/generate", {"text": prompt + f"Question: {QUESTIONS[i]['question']}\nAnswer:",
                                             "sampling_params": {"max_new_tokens": 256, "stop": ["Question"]}})
    assert status == 200
    return str(json.loads(body)["text"])


def test_generate_streams_cumulative_text_with_the_latency_knobs(server) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    req = urllib.request.Request(base + "/generate", method="POST", data=json.dumps(
        {"text": "hello there", "sampling_params": {"max_new_tokens": 5, "ignore_eos": True}, "stream": True}).encode())
    started = time.monotonic()
    with urllib.request.urlopen(req, timeout=10) as r:
        lines = [ln for ln in r.read().decode().split("\n\n") if ln]
    took = time.monotonic() - started
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[len("data: "):]) for ln in lines[:-1]]
    assert [c["meta_info"]["completion_tokens"] for c in chunks] == [1, 2, 3, 4, 5]
    assert chunks[-1]["text"].startswith(chunks[0]["text"]) and len(chunks[-1]["text"].split()) == 5
    assert chunks[-1]["meta_info"]["finish_reason"] == {"type": "length", "length": 5}
    assert chunks[0]["meta_info"]["spec_accept_length"] == 2.5 and chunks[0]["meta_info"]["prompt_tokens"] == 2
    assert took >= 0.2 + 4 * 0.02
    status, info = http(base + "/server_info")
    assert json.loads(info)["internal_states"][0]["avg_spec_accept_length"] == 2.5


def test_answers_known_questions_and_the_accuracy_knob_is_reread(server) -> None:  # type: ignore[no-untyped-def]
    base, cfg = server
    assert [_answer(base, i).rsplit("#### ", 1)[1] for i in range(10)] == [str(2 * i + 2) for i in range(10)]
    doc = json.loads(cfg.read_text())
    cfg.write_text(json.dumps(doc | {"accuracy": 0.5}))
    got = [int(_answer(base, i).rsplit("#### ", 1)[1]) for i in range(10)]
    right = [g == 2 * i + 2 for i, g in enumerate(got)]
    assert right == [i % 2 == 1 for i in range(10)]  # every other one, the same on every run
    assert all(g == 2 * i + 3 for i, g in enumerate(got) if not right[i])
    status, body = http(base + "/generate", {"text": "Question: what is unknown?\nAnswer:",
                                             "sampling_params": {"max_new_tokens": 16}})
    assert not any(ch.isdigit() for ch in json.loads(body)["text"])  # no number: the client counts it invalid


def test_chat_answers_mmlu_in_the_boxed_format(server) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    msg = "Answer the following multiple choice question.\n\n" + MMLU[2]["problem"]
    status, body = http(base + "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": msg}]})
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"].endswith("Answer: \\boxed{A}")


def _fake_real_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for pat in CLIENT_FILES:
            name = pat.replace("*", "x")
            zf.writestr(name, f"# real {name}\n")
        zf.writestr("sglang/benchmark/datasets/mmmu.py", "import datasets  # real\n")
        zf.writestr("sglang/srt/utils/common.py", "import torch\n")  # not a client file
        zf.writestr("sglang/__init__.py", "import torch  # real\n")
    return path


def test_wheel_carries_the_real_clients_verbatim_and_the_stand_ins(tmp_path: Path) -> None:
    real = _fake_real_wheel(tmp_path / "real.whl")
    wheel = zipfile.ZipFile(build_wheel(str(tmp_path / "out"), clients=str(real)))
    names = set(wheel.namelist())
    assert wheel.read("sglang/benchmark/serving.py") == b"# real sglang/benchmark/serving.py\n"
    assert wheel.read("sglang/test/few_shot_gsm8k.py") == b"# real sglang/test/few_shot_gsm8k.py\n"
    assert b"import torch" not in wheel.read("sglang/__init__.py")  # the sim's own light package
    assert b"FAKE_BOOTSTRAP_HOST" in wheel.read("sglang/srt/disaggregation/utils.py")
    assert b"import datasets" not in wheel.read("sglang/benchmark/datasets/mmmu.py")  # stand-in wins
    assert "sglang/srt/utils/common.py" not in names and "sglang/test/test_utils.py" in names
    meta = wheel.read("sglang-0.5.23.dist-info/METADATA").decode()
    assert "Provides-Extra: bench" in meta
    assert all(f'Requires-Dist: {r}; extra == "bench"' in meta for r in BENCH_REQUIRES)
    plain = zipfile.ZipFile(build_wheel(str(tmp_path / "plain")))
    assert "sglang/benchmark/serving.py" not in plain.namelist()
    assert "Provides-Extra" not in plain.read("sglang-0.5.23.dist-info/METADATA").decode()


def test_a_real_wheel_without_a_client_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.whl"
    with zipfile.ZipFile(real, "w") as zf:
        zf.writestr("sglang/bench_serving.py", "")
    with pytest.raises(ValueError, match="has no sglang/benchmark/__init__.py"):
        build_wheel(str(tmp_path / "out"), clients=str(real))


def test_many_connections_at_once_are_all_served(launcher, model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # few_shot_gsm8k opens up to 128 connections at once (--parallel 128): the real server listens
    # with backlog 2048; a backlog of 5 reset a quarter of them (KeyError 'answer' in the client)
    import threading

    port = free_port()
    rank = launcher(["--model-path", str(model_dir), "--tp-size", "8", "--host", "127.0.0.1", "--port", str(port)])
    rank.wait_for("The server is fired up and ready to roll!")
    codes: list[int] = []

    def one() -> None:
        try:
            status, _ = http(f"http://127.0.0.1:{port}/generate",
                             {"text": "hello", "sampling_params": {"max_new_tokens": 2}})
        except OSError:
            status = -1
        codes.append(status)

    threads = [threading.Thread(target=one) for _ in range(128)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes == [200] * 128
