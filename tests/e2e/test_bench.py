"""`glm5cluster bench` over real SSH on a 1-node 8xH200 GLM-5-FP8 lab (the cookbook's row):

- before `up`: the replica is named as not serving, with `status` suggested (exit 1);
- after `up`: the installed runtime is probed on node 0 through SSH; the lab's runtime is the
  SGLang *simulator*, which ships none of the benchmark clients, so bench names the installed
  version and the missing module (exit 1) and keeps nothing;
- `--history` of a cluster with no kept run.

The clients themselves (the real 0.5.23 `sglang.bench_serving`, `few_shot_gsm8k`, `run_eval`,
`sgl_eval_utils`) are not run in the lab: see the README ("glm5cluster bench", lab note) for why.
Parsing, comparison, history and the gate are proven by tests/unit/bench and tests/facts/bench
on outputs of the real clients (run outside the lab) and on outputs written with their print
statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import up_helpers as U

pytestmark = pytest.mark.lab

SUBNET = "172.28.135.0/24"


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


def test_not_serving_names_the_replica(inv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path))
    rc, out, _ = U.cli("bench", str(inv), "--suite", "latency", timeout=120)
    assert rc == 1, out
    assert "replica 0 (http://172.28.135.11:30000) is not serving" in out
    assert f"glm5cluster status {inv}" in out
    assert "Traceback" not in out


def test_missing_client_names_version_and_module(lab: Any, inv: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, _ = U.up(inv, [])
    assert rc == 0, out
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path))
    rc, out, _ = U.cli("bench", str(inv), "--suite", "latency,gsm8k", timeout=300)
    assert rc == 1, out
    assert ("replica 0 (node-1): SGLang 0.5.23 has no sglang.bench_serving: the latency client is "
            "missing from the installed version") in out
    assert "Traceback" not in out
    rc, out, _ = U.cli("bench", str(inv), "--history", timeout=60)
    assert rc == 0 and "no benchmark runs kept" in out, out
    assert not (tmp_path / "bench").exists() or not any((tmp_path / "bench").rglob("*.json"))
