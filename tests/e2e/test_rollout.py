"""The real sglang-router (0.3.2 wheel from the lab's package index) managed by up/status/down,
and `glm5cluster rollout`: one lab of 4 simulated H200 hosts (two tp16 replicas, the router on
node-4 beside replica 1's rank 1), shared by every test here, in order.

Lab name ``h1``, subnet 172.28.130.0/24.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.loadgen import Load
from tests.e2e.up_helpers import (
    LAB_HUB,
    changed_nothing,
    cli,
    down_lab,
    inventory,
    playbook_args,
    status,
    up,
)

pytestmark = pytest.mark.lab

ROUTER_PORT = 8000


@pytest.fixture(scope="module")
def lab(make_lab):  # type: ignore[no-untyped-def]
    lab = make_lab("h1", hosts=4, subnet="172.28.130.0/24", **LAB_HUB)
    yield lab
    down_lab(lab)


def router_inventory(lab: Any, dest: Path, **serving: Any) -> Path:
    inventory(lab, dest, cluster="rt")
    doc = yaml.safe_load(dest.read_text())
    doc["replicas"] = {"router": {"host": "node-4", "port": ROUTER_PORT, "health_check_interval": 2}}
    doc["serving"].update(serving)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def chat(url: str, timeout: float = 60) -> dict[str, Any]:
    body = json.dumps({"model": "zai-org/GLM-5", "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return dict(json.loads(r.read()))


def test_up_serves_through_the_real_router_and_a_rerun_changes_nothing(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    inv = router_inventory(lab, tmp_path_factory.mktemp("rt") / "rt.yaml")
    rc, out, _ = up(inv, playbook_args(inv.parent))
    assert rc == 0, out
    router = f"http://{lab.addresses['node-4']}:{ROUTER_PORT}"
    assert f"router: {router}" in out, out
    assert "2 replica(s) healthy in the router, smoke test passed through it" in out, out
    # The router is the real binary: its /workers holds both node 0s, healthy.
    _, doc = status(inv)
    r = doc["router"]
    assert r["ok"] and r["ready"] and r["unit_state"] == "active", r
    assert sorted(w["replica"] for w in r["workers"]) == [0, 1] and all(w["healthy"] for w in r["workers"]), r
    assert chat(router)["choices"][0]["message"]["content"]
    _, unit = lab.exec("node-4", "systemctl show -p ExecStart --value glm5-rt-router.service; "
                                 "ss -Hltnp 'sport = :8000'")
    assert "sglang_router.launch_router" in unit and "--port 8000" in unit and "sglang::router" in unit, unit
    rc, out, took = up(inv, playbook_args(inv.parent))
    assert rc == 0, out
    changed_nothing(out)


def test_up_restarting_the_groups_takes_each_out_of_the_router_first(lab: Any,
                                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    # `up --restart` behind the router: each group leaves the router before it stops and rejoins
    # after readiness and smoke, so the router never sends it a request while it restarts
    inv = router_inventory(lab, tmp_path_factory.mktemp("rt") / "rt.yaml")
    rc, out, _ = up(inv, playbook_args(inv.parent), "--restart", "--format", "json")
    doc, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])  # stdout (the object), then stderr
    assert rc == 0 and doc["exit_code"] == 0, out[-3000:]
    launch = next(s for s in doc["steps"] if s["task"] == "launch")["results"]
    assert launch["node-1"]["summary"].endswith("taken out of the router first"), launch
    assert launch["node-3"]["summary"].endswith("taken out of the router first"), launch
    assert {h["state"] for h in doc["hosts"].values()} == {"changed"}, doc["hosts"]
    assert doc["serving"]["router"] == f"http://{lab.addresses['node-4']}:{ROUTER_PORT}"
    _, st = status(inv)
    assert st["router"]["ok"] and st["serving"], st["router"]
    assert all(r["runs"] and r["runs"].startswith("sglang ") for rep in st["replicas"] for r in rep["ranks"]), st


def test_status_names_a_replica_the_router_finds_unhealthy_and_up_heals_it(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    inv = router_inventory(lab, tmp_path_factory.mktemp("rt") / "rt.yaml")
    lab.exec("node-3", "systemctl kill -s SIGKILL glm5-rt-r1.service")  # replica 1's node 0 dies
    deadline = time.monotonic() + 60
    while True:
        rc, doc = status(inv)
        r = doc["router"]
        if r["unhealthy_replicas"] == [1] or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert rc == 1 and r["unhealthy_replicas"] == [1] and not r["ok"], r
    rc, text, _ = cli("status", str(inv), timeout=120)
    assert f"http://{lab.addresses['node-3']}:30000  replica 1  UNHEALTHY" in text, text
    rc, out, _ = up(inv, playbook_args(inv.parent))
    assert rc == 0, out
    _, doc = status(inv)
    assert doc["router"]["ok"] and doc["serving"], doc["router"]


def test_rollout_of_both_groups_under_load_fails_no_request(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    inv = router_inventory(lab, tmp_path_factory.mktemp("rt") / "rt.yaml",
                           extra_args=["--max-running-requests", "64"])
    rc, out, _ = cli("rollout", str(inv), "--check")
    assert rc == 0, out
    assert "replica 0 (node-1, node-2): roll: rank 0 on node-1: launch config changed" in out, out
    assert "check: 2 replica group(s) would roll, 1 at a time" in out, out
    router = f"http://{lab.addresses['node-4']}:{ROUTER_PORT}"
    load = Load(router, "zai-org/GLM-5", clients=8).start()
    time.sleep(3)
    load.phase = "during"
    rc, out, took = cli("rollout", str(inv), timeout=900)
    load.phase = "after"
    time.sleep(3)
    load.stop()
    assert rc == 0, out
    assert "rollout done: 2 replica group(s)" in out, out
    sent, failed = len(load.samples), load.failures()
    assert sent > 20 and not failed, (len(failed), [f.error for f in failed[:5]], out[-3000:])
    assert load.stats("during")["requests"] > 10
    # every rank now runs the new flag; a second rollout has nothing to do
    for host in ("node-1", "node-3"):
        _, ps = lab.exec(host, "pgrep -af sglang.launch_server")
        assert "--max-running-requests 64" in ps, ps
    rc, out, _ = cli("rollout", str(inv))
    assert rc == 0 and "nothing to roll" in out, out


def test_a_failing_group_stays_out_and_rollback_restores_it(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    good = router_inventory(lab, tmp_path_factory.mktemp("rt") / "rt.yaml", extra_args=["--max-running-requests", "64"])
    bad = router_inventory(lab, good.with_name("bad.yaml"), extra_args=["--max-running-requests", "64"])
    doc = yaml.safe_load(bad.read_text())
    doc["serving"]["env"].update(SGLANG_SIM_OOM_AT_LOAD="1", SGLANG_SIM_FAULT_RANK="1")
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    rc, out, _ = cli("rollout", str(bad), timeout=900)
    assert rc == 1, out
    assert "FAILED: replica 0 (node-1, node-2) failed" in out and "node-2" in out, out
    assert "--rollback" in out and "replica 1: serving, in the router" in out, out
    _, st = status(bad)
    assert st["router"]["missing_replicas"] == [0], st["router"]
    assert chat(f"http://{lab.addresses['node-4']}:{ROUTER_PORT}")["choices"]  # replica 1 still serves
    rc, out, _ = cli("rollout", str(bad), "--rollback", timeout=900)
    assert rc == 0, out
    assert "rollback: to the inventory applied last" in out and "rollout done: 1 replica group(s)" in out, out
    _, st = status(good)
    assert st["router"]["ok"] and st["serving"], st


def test_down_keeps_the_router_when_asked_then_removes_it(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    inv = router_inventory(lab, tmp_path_factory.mktemp("rt") / "rt.yaml", extra_args=["--max-running-requests", "64"])
    rc, out, _ = cli("rollout", str(inv), "--max-unavailable", "2")
    assert rc == 0 and "nothing to roll" in out, out
    rc, out, _ = cli("down", str(inv), "--keep-router")
    assert rc == 0, out
    _, st = status(inv)
    assert st["router"]["unit_state"] == "active" and st["router"]["workers"] == [], st["router"]
    rc, out, _ = cli("down", str(inv))
    assert rc == 0, out
    assert "stopped and removed glm5-rt-router.service" in out, out
    _, ls = lab.exec("node-4", "ls /etc/systemd/system | grep glm5-rt-router; ss -Hltn 'sport = :8000'; true")
    assert ls.strip() == "", ls
