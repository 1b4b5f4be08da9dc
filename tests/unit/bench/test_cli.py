"""`glm5cluster bench` from the command line: bad input (exit 2, no traceback), a replica that
does not serve, the comparison and the gate, the history (wide and narrow), Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glm5cluster.bench.history import History
from glm5cluster.cli import bench_cmd
from glm5cluster.cli.main import main
from glm5cluster.engine.procedures.status import ClusterStatus, ReplicaStatus
from glm5cluster.facts.replica import Judgement, Verdict

from .helpers import FakeNode, all_outputs, capture

INV = """\
version: 1
cluster:
  name: c1
  gpu: {kind: H200, count: 8}
  interface: eth0
hosts:
- name: n0
  address: 10.0.0.1
model:
  repo: zai-org/GLM-5-FP8
  weights_dir: /models/glm5
"""


@pytest.fixture
def inv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path / "home"))
    p = tmp_path / "inv.yaml"
    p.write_text(INV)
    return p


class Pool:
    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *a: object) -> None:
        pass

    def get(self, host: str) -> FakeNode:
        return self.node


def cluster(verdict: Verdict = Verdict.SERVING) -> ClusterStatus:
    rep = ReplicaStatus(0, "http://10.0.0.1:30000", (), None, Judgement(verdict, "rank 0 exited"),
                        "zai-org/GLM-5-FP8", "0.5.23", None)
    return ClusterStatus("c1", "venv", (rep,))


def wire(monkeypatch: pytest.MonkeyPatch, node: FakeNode, verdict: Verdict = Verdict.SERVING) -> None:
    monkeypatch.setattr(bench_cmd, "ConnectionPool", lambda *a, **k: Pool(node))
    monkeypatch.setattr(bench_cmd, "collect", lambda *a, **k: cluster(verdict))


def test_unknown_suite_is_bad_input(inv: Path, capsys: Any) -> None:
    assert main(["bench", str(inv), "--suite", "latency,speed"]) == 2
    assert "unknown suite 'speed'" in capsys.readouterr().err


def test_missing_and_malformed_data_path(inv: Path, tmp_path: Path, capsys: Any) -> None:
    assert main(["bench", str(inv), "--suite", "gsm8k", "--data-path", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 4"}\n{"question": 1}\n')
    assert main(["bench", str(inv), "--suite", "gsm8k", "--data-path", str(bad)]) == 2
    assert f"{bad}:2: needs string fields question and answer" in capsys.readouterr().err
    short = tmp_path / "short.jsonl"
    short.write_text('{"question": "q", "answer": "#### 4"}\n')
    assert main(["bench", str(inv), "--suite", "gsm8k", "--data-path", str(short)]) == 2
    assert "has 1 questions, --num-questions asks for 200" in capsys.readouterr().err


def test_missing_and_malformed_mmlu_data_path(inv: Path, tmp_path: Path, capsys: Any) -> None:
    good = '{"problem": "2+2?\\n\\nA) 3\\nB) 4\\nC) 5\\nD) 6", "expected_answer": "B"}\n'
    assert main(["bench", str(inv), "--suite", "mmlu", "--mmlu-data-path", str(tmp_path / "nope.jsonl")]) == 2
    assert "MMLU data: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good + '{"problem": "q", "expected_answer": "E"}\n')
    assert main(["bench", str(inv), "--suite", "mmlu", "--mmlu-data-path", str(bad)]) == 2
    assert f"{bad}:2: needs a string problem and an expected_answer A-D" in capsys.readouterr().err
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text(good + "{not json\n")
    assert main(["bench", str(inv), "--suite", "mmlu", "--mmlu-data-path", str(garbled)]) == 2
    assert f"{garbled}:2: not a JSON object" in capsys.readouterr().err
    assert main(["bench", str(inv), "--suite", "mmlu", "--num-questions", "5", "--mmlu-data-path", str(bad)]) == 2
    assert main(["bench", str(inv), "--suite", "latency", "--mmlu-data-path", str(bad)]) == 2
    assert "add mmlu to --suite" in capsys.readouterr().err


def test_replica_not_serving_is_named(inv: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    wire(monkeypatch, FakeNode(outputs=all_outputs()), Verdict.BROKEN)
    assert main(["bench", str(inv)]) == 1
    err = capsys.readouterr().err
    assert "replica 0 (http://10.0.0.1:30000) is not serving: broken" in err
    assert "glm5cluster status" in err


def test_all_suites_compared_kept_and_gated(inv: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    wire(monkeypatch, FakeNode(outputs=all_outputs()))
    assert main(["bench", str(inv), "--gate"]) == 0
    out = capsys.readouterr().out
    assert "cookbook" in out and "117.96 tok/s" in out and "gate: PASSED" in out
    assert len(History("c1").load()) == 1
    # a slower run against the same config: the gate fails on the previous run and the cookbook
    slow = all_outputs()
    slow["sglang.bench_serving"] = capture("serving_latency.txt").replace("7.54      ", "9.00      ")
    wire(monkeypatch, FakeNode(outputs=slow))
    assert main(["bench", str(inv), "--suite", "latency", "--gate", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["gate_passed"] is False
    tpot = next(c for c in doc["comparisons"][0]["checks"] if c["metric"] == "mean_tpot_ms")
    assert tpot["verdict"] == "regression" and tpot["previous"] == 7.54 and tpot["published"] == 7.54
    # without --gate the regression is shown but the exit code stays 0
    assert main(["bench", str(inv), "--suite", "latency"]) == 0
    assert "REGRESSION" in capsys.readouterr().out


def test_history_wide_and_narrow(inv: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    assert main(["bench", str(inv), "--history"]) == 0
    assert "no benchmark runs kept" in capsys.readouterr().out
    wire(monkeypatch, FakeNode(outputs=all_outputs()))
    assert main(["bench", str(inv), "--suite", "latency,gsm8k"]) == 0
    assert main(["bench", str(inv), "--suite", "latency,gsm8k"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(bench_cmd.shutil, "get_terminal_size",
                        lambda *_a, **_k: __import__("os").terminal_size((160, 40)))
    assert main(["bench", str(inv), "--history"]) == 0
    wide = capsys.readouterr().out
    assert wide.count("latency r0") == 2 and "gsm8k r0" in wide and "0.5.23" in wide
    monkeypatch.setattr(bench_cmd.shutil, "get_terminal_size",
                        lambda *_a, **_k: __import__("os").terminal_size((60, 40)))
    assert main(["bench", str(inv), "--history"]) == 0
    narrow = capsys.readouterr().out
    assert "latency output throughput: ▁▁ last 117.96 tok/s (2 runs)" in narrow


def test_ctrl_c_keeps_nothing(inv: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    class Interrupted(FakeNode):
        def run(self, cmd):  # type: ignore[no-untyped-def]
            if "bench_serving --backend" in cmd.command_line():
                raise KeyboardInterrupt
            return super().run(cmd)

    wire(monkeypatch, Interrupted(outputs=all_outputs()))
    assert main(["bench", str(inv)]) == 130
    assert "no result of this run was kept" in capsys.readouterr().err
    assert History("c1").paths() == []


def test_unknown_replica_and_router_less_via_router(inv: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    assert main(["bench", str(inv), "--replica", "3"]) == 2
    assert "--replica 3: no such replica (this inventory has [0])" in capsys.readouterr().err
    assert main(["bench", str(inv), "--via-router", "--suite", "latency"]) == 2  # before any SSH
    assert "--via-router: this inventory has no router" in capsys.readouterr().err


def test_api_key_env_must_be_set(inv: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    inv.write_text(INV + "serving:\n  secrets:\n    api_key_env: GLM5_TEST_KEY\n")
    monkeypatch.delenv("GLM5_TEST_KEY", raising=False)
    assert main(["bench", str(inv), "--suite", "latency"]) == 1
    assert "GLM5_TEST_KEY, which is not set here" in capsys.readouterr().err
