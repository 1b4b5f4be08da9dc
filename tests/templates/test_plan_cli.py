"""`glm5cluster plan`: the JSON document for every example inventory, text output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glm5cluster.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = sorted((ROOT / "inventory").glob("*.yaml"))


@pytest.mark.parametrize("path", INVENTORIES, ids=lambda p: p.stem)
def test_plan_json(path, capsys):
    assert main(["plan", str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["replicas"]
    for rep in doc["replicas"]:
        assert {"tp_size", "nnodes", "dist_init_addr", "endpoint", "nodes"} <= set(rep)
        assert len(rep["nodes"]) == rep["nnodes"]
        assert [n["node_rank"] for n in rep["nodes"]] == list(range(rep["nnodes"]))
        for n in rep["nodes"]:
            assert {"host", "node_rank", "sglang_args", "env"} <= set(n)
            assert all(isinstance(a, str) for a in n["sglang_args"])
            assert "--api-key" not in n["command"]


def test_plan_text_and_secrets_by_name(capsys):
    assert main(["plan", str(ROOT / "inventory" / "two-replicas-router.yaml")]) == 0
    out = capsys.readouterr().out
    assert "router" in out and "GLM5_API_KEY" in out and "Why" in out


def test_plan_bad_input_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "inventory" / "mi300x-bf16.yaml").read_text().replace("zai-org/GLM-5\n", "zai-org/GLM-5-FP8\n"))
    assert main(["plan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "FP8 not verified on AMD" in err and f"{bad}:" in err and "model.repo" in err
    extra = tmp_path / "extra.yaml"
    extra.write_text((ROOT / "inventory" / "h200-fp8.yaml").read_text() + "  extra_args: ['--tp', '8']\n")
    assert main(["plan", str(extra), "--format", "json"]) == 2
    assert "serving.extra_args" in capsys.readouterr().err
