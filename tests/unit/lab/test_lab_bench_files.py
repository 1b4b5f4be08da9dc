"""The default lab's bench data: `lab up` writes the simulator's own questions as the clients'
local files (the inventory's bench.* paths), and the simulated server answers exactly those
questions when no question file is configured, so `glm5cluster bench` scores them offline."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import pytest

from glm5cluster.lab.files import QUESTIONS, LabSettings, inventory_data, write_bench_files
from glm5cluster.lab.sim.sglang_sim.build import build_wheel
from glm5cluster.model.inventory import Inventory

SIM_BENCH = QUESTIONS.parent / "bench.py"


def sim_bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("sim_bench_under_test", SIM_BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_written_files_are_the_questions_the_simulator_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLM5CLUSTER_LAB_HOME", str(tmp_path))
    d = write_bench_files("b21")
    gsm = [json.loads(x) for x in (d / "gsm8k.jsonl").read_text().splitlines()]
    mmlu = [json.loads(x) for x in (d / "mmlu.jsonl").read_text().splitlines()]
    share = json.loads((d / "sharegpt.json").read_text())
    assert (len(gsm), len(mmlu), len(share)) == (200, 30, 1000) and share[0]["conversations"][0]["from"] == "human"
    knobs = sim_bench().Knobs({})  # no question files configured: the lab's own
    gold = gsm[4]["answer"].rsplit("#### ", 1)[1]
    assert knobs.answer(f"Question: {gsm[4]['question']}\nAnswer:").endswith(f"#### {gold}")
    assert knobs.answer(f"{mmlu[7]['problem']}\n").endswith(f"\\boxed{{{mmlu[7]['expected_answer']}}}")
    assert sim_bench().Knobs({"questions": []}).answer(gsm[4]["question"]) is None  # configured: only those


def test_bench_clients_setting_adds_the_packages_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLM5CLUSTER_LAB_HOME", str(tmp_path))
    hosts = [("node-1", "172.28.190.11", "H200", 8, False)]
    plain = inventory_data(LabSettings("b21", 1, "H200", 8, "172.28.190.0/24"), hosts)
    assert "bench" not in plain and "extra_packages" not in plain["serving"]  # type: ignore[operator]
    doc = inventory_data(LabSettings("b21", 1, "H200", 8, "172.28.190.0/24", bench_clients=True), hosts)
    inv = Inventory.model_validate(doc)
    assert inv.serving.extra_packages == ["sglang[bench]==0.5.23", "sgl-eval==0.1.3"]
    assert Path(inv.bench.mmlu_data_path or "").expanduser() == tmp_path / "b21" / "bench" / "mmlu.jsonl"


def test_sim_wheel_carries_the_questions(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        assert json.loads(z.read("sglang/_sim/bench_questions.json")) == json.loads(QUESTIONS.read_text())
