"""A client that SGLang ships but that cannot be imported (its dependencies are missing from the
runtime, e.g. aiohttp for sglang.bench_serving) is named with the node, the version, the module
and the import error, and the hint says how to install the dependencies (serving.extra_packages);
the probe script itself is run here against a stand-in package laid out like the real wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from glm5cluster.bench.records import Suite
from glm5cluster.bench.runner import BenchRequest, run_bench
from glm5cluster.bench.suites import parse_probe, probe_argv
from glm5cluster.errors import GlmError
from tests.unit.conftest import make_inventory, plan

from .helpers import ALL_MODULES, FakeNode, all_outputs

AIOHTTP = "ModuleNotFoundError: No module named 'aiohttp'"


def test_probe_script_reports_a_shipped_client_whose_import_fails(tmp_path: Path) -> None:
    # sglang/bench_serving.py imports sglang.benchmark.serving, whose first lines import aiohttp
    # (real 0.5.23: sglang/bench_serving.py:10, sglang/benchmark/serving.py imports aiohttp)
    pkg = tmp_path / "sglang"
    (pkg / "benchmark").mkdir(parents=True)
    (pkg / "test").mkdir()
    for init in (pkg, pkg / "benchmark", pkg / "test"):
        (init / "__init__.py").write_text("")
    (pkg / "bench_serving.py").write_text("from sglang.benchmark.serving import *  # noqa\n")
    (pkg / "benchmark" / "serving.py").write_text("import aiohttp_not_installed_here as aiohttp\n")
    (pkg / "test" / "few_shot_gsm8k.py").write_text("import json\n")
    res = subprocess.run(probe_argv([sys.executable]), cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=True)
    got = parse_probe(res.stdout)
    assert got.broken["sglang.bench_serving"] == "ModuleNotFoundError: No module named 'aiohttp_not_installed_here'"
    assert "sglang.test.few_shot_gsm8k" in got.modules
    assert "sgl_eval" not in got.modules and "sgl_eval" not in got.broken  # not shipped at all
    assert got.missing(Suite.LATENCY, False) == ()
    assert got.failing(Suite.LATENCY, False) == {"sglang.bench_serving": got.broken["sglang.bench_serving"]}


def probe_with_broken(broken: dict[str, str]) -> str:
    lines = ["version 0.5.23"] + [f"module {m} broken {broken[m]}" if m in broken else f"module {m} yes"
                                  for m in ALL_MODULES]
    return "\n".join(lines) + "\n"


def test_unimportable_client_names_node_version_module_error_and_the_fix() -> None:
    node = FakeNode(outputs=all_outputs(), probe=probe_with_broken({"sglang.bench_serving": AIOHTTP}))
    inv = make_inventory()
    with pytest.raises(GlmError) as e:
        run_bench(inv, plan(inv), lambda _h: node, BenchRequest((Suite.LATENCY,)), None, "20260101T000000Z")
    msg = str(e.value)
    assert "replica 0 (" in msg and "SGLang 0.5.23 ships the latency client sglang.bench_serving" in msg
    assert f"cannot be imported in glm5-t-r0.service: {AIOHTTP}" in msg
    hint = e.value.hint or ""
    assert "the runtime lacks the Python module 'aiohttp'" in hint and "serving.extra_packages" in hint
    assert "In the rehearsal lab the simulated wheel keeps the clients' dependencies under its extra: " \
           "'sglang[bench]==0.5.23'" in hint
    assert "Traceback" not in msg
    assert not [c for c in node.ran if "bench_serving --backend" in c.command_line()]  # nothing ran


def test_unimportable_mmlu_client_hint_names_sgl_eval() -> None:
    node = FakeNode(outputs=all_outputs(),
                    probe=probe_with_broken({"sgl_eval": "ModuleNotFoundError: No module named 'datasets'"}))
    inv = make_inventory()
    with pytest.raises(GlmError, match="mmlu client sgl_eval, but it cannot be imported") as e:
        run_bench(inv, plan(inv), lambda _h: node, BenchRequest((Suite.MMLU,)), None, "20260101T000000Z")
    assert "'sgl-eval==0.1.3'" in (e.value.hint or "")
