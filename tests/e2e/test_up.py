"""`glm5cluster up` on a 2-node H200 lab (tp16 BF16), venv runtime, over real SSH: serves with
smoke tests passed, a re-run changes nothing, a rank killed while serving gets its whole group
restarted, and faults are reported within 15 s naming rank, host and cause.

Run order matters inside this module (one lab, tests build on each other's state).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import up_helpers as U

pytestmark = pytest.mark.lab
UNIT = "glm5-lab-up2-r0.service"


@pytest.fixture(scope="module")
def lab(make_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    lab = make_lab("up2", hosts=2, gpu="H200", subnet="172.28.93.0/24")
    tmp = tmp_path_factory.mktemp("up2")
    wheel, repo = U.build_assets(tmp)
    U.provision(lab, wheel, repo)
    lab.tmp = tmp
    yield lab


def _tmp(lab: Any) -> Path:
    return Path(lab.tmp)


def test_up_serves_then_rerun_changes_nothing(lab: Any) -> None:
    inv = U.inventory(lab, _tmp(lab), "ok")
    rc, out, secs = U.up(inv)
    assert rc == 0, out
    assert "GLM-5 is serving: model id zai-org/GLM-5" in out
    assert "http://172.28.93.11:30000" in out and "curl -s" in out
    assert re.search(r"smoke test: 1 ok", out), out
    first = {h: U.invocation(lab, h, UNIT) for h in lab.hosts}
    rc, out, secs = U.up(inv)
    assert rc == 0, out
    assert "changed=0" in out and "changed=1" not in out, out
    assert secs < 20, f"re-run took {secs:.1f}s"
    assert {h: U.invocation(lab, h, UNIT) for h in lab.hosts} == first


def test_rank_killed_while_serving_restarts_the_whole_group(lab: Any) -> None:
    inv = U.inventory(lab, _tmp(lab), "ok")
    before = {h: U.invocation(lab, h, UNIT) for h in lab.hosts}
    assert all(before.values())
    rc, out = lab.exec("node-2", f"systemctl kill -s SIGKILL {UNIT}")
    assert rc == 0, out
    rc, out, _ = U.up(inv)
    assert rc == 0, out
    assert "restart the whole group" in out or "start the whole group" in out, out
    after = {h: U.invocation(lab, h, UNIT) for h in lab.hosts}
    assert all(after[h] and after[h] != before[h] for h in lab.hosts), (before, after)


def _noticed(out: str) -> float:
    m = re.search(r"noticed ([0-9.]+)s after it exited", out)
    assert m, out
    return float(m.group(1))


def test_rank_crash_during_load_is_named(lab: Any) -> None:
    env = {"SGLANG_SIM_LOAD_SECONDS": "6", "SGLANG_SIM_CRASH_AFTER": "3", "SGLANG_SIM_FAULT_RANK": "1"}
    rc, out, _ = U.up(U.inventory(lab, _tmp(lab), "crash", env))
    assert rc == 1, out
    assert "rank 1 on node-2" in out, out
    assert _noticed(out) <= 15


def test_oom_at_load_is_named(lab: Any) -> None:
    env = {"SGLANG_SIM_OOM_AT_LOAD": "1", "SGLANG_SIM_FAULT_RANK": "1"}
    rc, out, _ = U.up(U.inventory(lab, _tmp(lab), "oom", env))
    assert rc == 1, out
    assert "rank 1 on node-2: out of GPU memory" in out, out
    assert "mem-fraction-static" in out
    assert _noticed(out) <= 15


def test_missing_shard_is_caught_before_launch(lab: Any) -> None:
    shard = f"{U.WEIGHTS}/model-00002-of-00004.safetensors"
    lab.exec("node-2", f"mv {shard} {shard}.away")
    try:
        rc, out, _ = U.up(U.inventory(lab, _tmp(lab), "ok"))
    finally:
        lab.exec("node-2", f"mv {shard}.away {shard}")
    assert rc == 1, out
    assert re.search(r"node-2: .*1 weight file\(s\) missing or truncated .*model-00002-of-00004", out), out
    assert "[4] launch: 1 skipped" in out and "changed=1" not in out  # nothing launched


def test_blocked_dist_init_port_is_caught_by_preflight(lab: Any) -> None:
    block = "iptables -I INPUT -p tcp --dport 20000 -s 172.28.93.12 -j DROP"
    rc, out = lab.exec("node-1", block)
    if rc != 0:
        pytest.skip(f"no working iptables in the lab host: {out}")
    try:
        lab.exec("node-1", f"systemctl stop {UNIT}")  # the port must be probed by the listener
        rc, out, secs = U.up(U.inventory(lab, _tmp(lab), "ok"))
    finally:
        lab.exec("node-1", block.replace("-I INPUT", "-D INPUT"))
    assert rc == 1, out
    assert "node-2" in out and "cannot reach the head node-1 at 172.28.93.11:20000" in out, out
    assert "[4] launch: 1 skipped" in out and "changed=1" not in out  # nothing launched
    assert secs < 30
