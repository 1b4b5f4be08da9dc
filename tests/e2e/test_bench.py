"""`glm5cluster bench` over real SSH on a 1-node 8xH200 GLM-5-FP8 lab (the cookbook's row), with
the REAL SGLang 0.5.23 clients (`sglang.bench_serving --dataset-name random`, `few_shot_gsm8k`,
and sgl-eval's MMLU through `sgl_eval_utils.run_sgl_eval`), which the lab's simulated sglang
wheel carries verbatim from the real wheel (`lab/sim/sglang_sim/build.py`), against the
simulator's API. The simulator answers the lab's own question files with a deterministic
accuracy knob and latency knobs (`sglang/_sim/bench.py`), set in a file on node 0:

- before `up`: the replica is named as not serving, with `status` suggested (exit 1);
- after `up`, before the clients' dependencies are installed: the shipped client that does not
  import is named with its import error (ModuleNotFoundError) and the `serving.extra_packages` fix;
- after `up`, with the clients' dependencies installed (`sglang[bench]`) but not sgl-eval: the
  MMLU client is named missing with the installed version and the module, with the
  `pip install sgl-eval` hint, and nothing is kept;
- with sgl-eval installed: all four suites run with small parameters, offline (local GSM8K,
  ShareGPT and MMLU files), the comparison prints, the gate passes, the run is kept and the
  run's private directory on node 0 is gone;
- the simulator's accuracy lowered to 0.5: the gate fails (exit 1) naming the accuracy metric.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import up_helpers as U

pytestmark = pytest.mark.lab

SUBNET = "172.28.135.0/24"
VENV = "/opt/glm5cluster/venv"
SIM_CONFIG = "/etc/glm5lab/sglang-sim-bench.json"
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun"]
THINGS = ["apples", "books", "coins", "pencils", "stamps", "marbles"]
SMALL = ("--num-prompts", "8", "--max-concurrency", "4", "--input-len", "64", "--output-len", "32",
         "--num-questions", "20")


def gsm8k_rows() -> list[dict[str, str]]:
    rows = []
    for i in range(30):
        n, t = NAMES[i % 10], THINGS[i % 6]
        a, b, c = 3 + i, 2 + (i * 7) % 11, 1 + (i * 3) % 5
        ans = a + b * c - a // 2
        rows.append({"question": f"{n} has {a} {t}, gets {b} more each day for {c} days, then gives away "
                                 f"{a // 2}. How many {t} does {n} have now?",
                     "answer": f"{n} gets {b}*{c}={b * c} more.\n{a}+{b * c}-{a // 2}={ans}\n#### {ans}"})
    return rows


def mmlu_rows() -> list[dict[str, str]]:
    """sgl-eval's prepared MMLU format (problem with lettered options, expected_answer)."""
    rows = []
    for i in range(30):
        a, b = 2 + i, 3 + (i * 5) % 7
        opts = [a * b + d for d in (-2, 0, 3, 5)]
        opts = opts[i % 4:] + opts[:i % 4]
        options = "\n".join(f"{letter}) {o}" for letter, o in zip("ABCD", opts, strict=True))
        rows.append({"problem": f"Question {i + 1}: a crate holds {a} rows of {b} jars. How many jars does it "
                                f"hold?\n\n{options}", "expected_answer": "ABCD"[opts.index(a * b)],
                     "options": options, "subtopic": "elementary_mathematics", "subset_for_metrics": "math"})
    return rows


def sharegpt() -> list[dict[str, Any]]:
    return [{"id": str(i), "conversations": [
        {"from": "human", "value": f"Please explain topic number {i} in a few clear sentences for a new reader."},
        {"from": "gpt", "value": "Sure, here is a short and clear explanation of the topic for you."}]}
        for i in range(30)]


def jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def lab(make_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    lab = make_lab("i1", hosts=1, gpu="H200", subnet=SUBNET, **U.LAB_HUB)
    lab.tmp = tmp_path_factory.mktemp("i1")
    yield lab
    U.down_lab(lab)


@pytest.fixture(scope="module")
def inv(lab: Any) -> Path:
    path = U.inventory(lab, Path(lab.tmp) / "bench.yaml", cluster="bench-fp8")
    doc = yaml.safe_load(path.read_text())
    doc["model"].update(repo="zai-org/GLM-5-FP8", weights_dir="/srv/models/GLM-5-FP8")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def data(lab: Any) -> dict[str, Path]:
    d = Path(lab.tmp)
    files = {"gsm8k": d / "gsm8k.jsonl", "mmlu": d / "mmlu.jsonl", "sharegpt": d / "sharegpt.json"}
    files["gsm8k"].write_text(jsonl(gsm8k_rows()))
    files["mmlu"].write_text(jsonl(mmlu_rows()))
    files["sharegpt"].write_text(json.dumps(sharegpt()))
    return files


def set_sim(lab: Any, **knobs: float) -> None:
    """The simulator's benchmark knobs on node 0 (re-read by the server on the next request)."""
    doc = {"ttft_ms": 40, "tpot_ms": 4, "accept_length": 3.2, "accuracy": 1.0,
           "questions": ["/srv/bench/gsm8k.jsonl", "/srv/bench/mmlu.jsonl"], **knobs}
    rc, out = lab.exec("node-1", f"mkdir -p /etc/glm5lab && printf %s {shlex.quote(json.dumps(doc))} > {SIM_CONFIG}")
    assert rc == 0, out


def pip_install(lab: Any, inv: Path, *reqs: str) -> float:
    index = yaml.safe_load(inv.read_text())["serving"]["package_index"]
    host = index.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    t0 = time.monotonic()
    rc, out = lab.exec("node-1", f"{VENV}/bin/pip install -q --disable-pip-version-check --index-url "
                                 f"{shlex.quote(index)} --trusted-host {host} " + " ".join(map(shlex.quote, reqs)))
    assert rc == 0, out
    return time.monotonic() - t0


def bench(inv: Path, data: dict[str, Path], suites: str, *extra: str) -> tuple[int, str]:
    """`glm5cluster bench` with small parameters, offline: the local data files of the suites."""
    chosen = suites.split(",")
    files = ["--sharegpt-path", str(data["sharegpt"])]
    if "gsm8k" in chosen:
        files += ["--data-path", str(data["gsm8k"])]
    if "mmlu" in chosen:
        files += ["--mmlu-data-path", str(data["mmlu"])]
    rc, out, _ = U.cli("bench", str(inv), "--suite", suites, *SMALL, *files, *extra, timeout=600)
    return rc, out


def test_not_serving_names_the_replica(inv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path))
    rc, out, _ = U.cli("bench", str(inv), "--suite", "latency", timeout=120)
    assert rc == 1, out
    assert "replica 0 (http://172.28.135.11:30000) is not serving" in out
    assert f"glm5cluster status {inv}" in out
    assert "Traceback" not in out


def test_missing_client_names_version_and_module(lab: Any, inv: Path, data: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, _ = U.up(inv, [])
    assert rc == 0, out
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path))
    # the clients are shipped, but their dependencies are not installed yet: named, with the fix
    rc, out = bench(inv, data, "latency")
    assert rc == 1, out
    assert ("replica 0 (node-1): SGLang 0.5.23 ships the latency client sglang.bench_serving, but it cannot "
            "be imported in ") in out and "ModuleNotFoundError: No module named " in out, out
    assert "serving.extra_packages" in out and "Traceback" not in out
    took = pip_install(lab, inv, "sglang[bench]==0.5.23")
    print(f"sglang[bench] (the clients' dependencies) installed in {took:.1f} s")
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path))
    rc, out = bench(inv, data, "latency,mmlu")
    assert rc == 1, out
    assert ("replica 0 (node-1): SGLang 0.5.23 has no sgl_eval: the mmlu client is missing from the "
            "installed version") in out
    assert "pip install sgl-eval" in out and "Traceback" not in out
    rc, out, _ = U.cli("bench", str(inv), "--history", timeout=60)
    assert rc == 0 and "no benchmark runs kept" in out, out


def test_real_clients_run_all_four_suites_and_the_gate_passes_then_fails(
        lab: Any, inv: Path, data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    took = pip_install(lab, inv, "sgl-eval==0.1.3")
    print(f"sgl-eval installed in {took:.1f} s")
    for name in ("gsm8k", "mmlu"):
        rc, out = lab.exec("node-1", f"mkdir -p /srv/bench && printf %s {shlex.quote(data[name].read_text())} "
                                     f"> /srv/bench/{name}.jsonl")
        assert rc == 0, out
    set_sim(lab)
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path))
    rc, out = bench(inv, data, "latency,throughput,gsm8k,mmlu", "--gate")
    print(out)
    assert rc == 0, out
    for row in ("latency r0", "throughput r0", "gsm8k r0", "mmlu r0", "output throughput", "mean TPOT",
                "accept length", "gate: PASSED"):
        assert row in out, row
    kept = json.loads(next((tmp_path / "bench" / "bench-fp8").glob("*.json")).read_text())
    by_suite = {r["suite"]: r for r in kept["results"]}
    assert not any(r["error"] for r in by_suite.values()), by_suite
    assert by_suite["gsm8k"]["metrics"]["accuracy"] == 1.0 and by_suite["mmlu"]["metrics"]["accuracy"] == 1.0
    lat = by_suite["latency"]["metrics"]
    assert 40 <= lat["mean_ttft_ms"] < 2000 and lat["accept_length"] == 3.2, lat
    assert "python -m sglang.bench_serving --backend sglang" in by_suite["latency"]["command"]
    rc, left = lab.exec("node-1", "ls -d /tmp/glm5cluster-bench.* 2>/dev/null | wc -l")
    assert left.strip() == "0", left

    set_sim(lab, accuracy=0.5)
    rc, out = bench(inv, data, "gsm8k,mmlu", "--gate")
    print(out)
    assert rc == 1, out
    assert "gate: FAILED" in out
    assert any("accuracy" in line and "REGRESSION" in line for line in out.splitlines()), out
    runs = sorted((tmp_path / "bench" / "bench-fp8").glob("*.json"))
    assert [json.loads(p.read_text())["gate_passed"] for p in runs] == [True, False]
