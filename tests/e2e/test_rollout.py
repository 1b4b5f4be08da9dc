"""The real sglang-router (0.3.2 wheel from the lab's package index) managed by up/status/down,
and `glm5cluster rollout`: one lab of 4 simulated H200 hosts (two tp16 replicas, the router on
node-4 beside replica 1's rank 1), shared by every test here, in order.

Lab name ``h1``, subnet 172.28.130.0/24.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.up_helpers import LAB_HUB, changed_nothing, cli, down_lab, inventory, playbook_args, status, up

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
    assert f"router: {router}" in out and "2 replica(s) healthy" in out, out
    assert "passed through the router" in out, out
    # The router is the real binary: its /workers holds both node 0s, healthy.
    _, doc = status(inv)
    r = doc["router"]
    assert r["ok"] and r["ready"] and r["unit_state"] == "active", r
    assert sorted(w["replica"] for w in r["workers"]) == [0, 1] and all(w["healthy"] for w in r["workers"]), r
    assert chat(router)["choices"][0]["message"]["content"]
    _, ps = lab.exec("node-4", "pgrep -af sglang_router.launch_router")
    assert "--port 8000" in ps, ps
    rc, out, took = up(inv, playbook_args(inv.parent))
    assert rc == 0, out
    changed_nothing(out)
