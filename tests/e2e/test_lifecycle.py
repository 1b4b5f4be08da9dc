"""status / logs / down against the rehearsal lab over real SSH (issue 5, item 7):

- a serving replica: `status` says serving (exit 0), with model, version and every rank;
- `logs` merges every rank's lines in time order, prefixed ``<node> r<replica> |``;
- a rank killed while serving: `status` shows the replica broken and names that rank;
- `down` drains the head first, leaves no unit, container or process of the cluster on any host,
  a second `down` changes nothing, a second cluster on the same hosts keeps serving, and a
  cluster brought up again after `down` serves again; the same for the docker runtime.

Clusters are brought up with ``lifecycle_lab.launch`` (render.py's files, started head first)
until `glm5cluster up` runs end to end in the lab.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lifecycle_lab import install_sim, launch, stage_model, write_inventory

pytestmark = pytest.mark.lab

NAME = "lifecycle"
SUBNET = "172.28.97.0/24"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glm5cluster", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def status(inv: Path) -> tuple[int, dict[str, Any]]:
    r = cli("status", str(inv), "--format", "json")
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def wait_serving(inv: Path, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rc, doc = status(inv)
        if rc == 0:
            return doc
        assert time.monotonic() < deadline, f"{inv.name} not serving: {doc}"
        time.sleep(2)


@pytest.fixture(scope="module")
def lab(make_lab):  # type: ignore[no-untyped-def]
    lab = make_lab(NAME, hosts=2, subnet=SUBNET, mirror=True, hub_shards=1, hub_shard_mb=0.05)  # registry: docker runtime
    install_sim(lab)
    stage_model(lab)
    return lab


@pytest.fixture(scope="module")
def clusters(lab, tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("lifecycle")
    a = write_inventory(lab, d / "a.yaml", "lc-a", 30000, 20000)
    b = write_inventory(lab, d / "b.yaml", "lc-b", 30100, 20100)
    launch(lab, a)
    launch(lab, b)
    wait_serving(a)
    wait_serving(b)
    return a, b


def leftovers(lab, cluster: str, port: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Anything of ``cluster`` on any host: units (loaded or files), containers, config, processes."""
    found = []
    for host in lab.hosts:
        _, out = lab.exec(host, (
            f"ls /etc/systemd/system | grep -F 'glm5-{cluster}-r'; "
            f"systemctl list-units --all --plain --no-legend 'glm5-{cluster}-r*'; "
            f"docker ps -a --filter label=glm5cluster.cluster={cluster} --format '{{{{.Names}}}}'; "
            f"ls -d /etc/glm5cluster/{cluster} 2>/dev/null; "
            f"pgrep -af -- '--port {port}' | grep -v pgrep; true"))
        found += [f"{host}: {line}" for line in out.splitlines() if line.strip()]
    return found


def test_status_of_serving_replicas(clusters) -> None:  # type: ignore[no-untyped-def]
    a, _ = clusters
    rc, doc = status(a)
    assert rc == 0 and doc["serving"] is True
    rep = doc["replicas"][0]
    assert rep["verdict"] == "serving" and rep["health"] == 200
    assert rep["served_models"] == ["zai-org/GLM-5"] and rep["sglang_version"] == "0.5.23"
    assert [(r["rank"], r["host"], r["state"]) for r in rep["ranks"]] == [(0, "node-1", "active"), (1, "node-2", "active")]
    assert rep["uptime_s"] is not None and rep["uptime_s"] >= 0
    text = cli("status", str(a))
    assert text.returncode == 0 and "replica 0: SERVING" in text.stdout


def test_logs_are_merged_and_prefixed(clusters) -> None:  # type: ignore[no-untyped-def]
    a, _ = clusters
    r = cli("logs", str(a), "--lines", "20")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert {ln.split(" | ")[0].strip() for ln in lines} == {"node-1 r0", "node-2 r0"}
    stamps = [ln.split(" | ", 1)[1].split(" ", 1)[0] for ln in lines]
    assert stamps == sorted(stamps)
    only = cli("logs", str(a), "--node", "node-2", "--since", "1h")
    assert only.returncode == 0 and only.stdout and all(ln.startswith("node-2 r0 |") for ln in only.stdout.splitlines())
    assert any("Load weight begin" in ln for ln in only.stdout.splitlines())


def test_a_rank_killed_while_serving_breaks_the_replica(lab, clusters) -> None:  # type: ignore[no-untyped-def]
    a, b = clusters
    rc, _ = lab.exec("node-2", "systemctl kill -s SIGKILL glm5-lc-a-r0.service")
    assert rc == 0
    deadline = time.monotonic() + 30
    while True:
        rc, doc = status(a)
        rep = doc["replicas"][0]
        if rep["verdict"] == "broken" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert rc == 1 and rep["verdict"] == "broken", rep
    assert rep["failing"]["rank"] == 1 and rep["failing"]["host"] == "node-2"
    assert "signal 9" in rep["reason"]
    assert status(b)[0] == 0  # the other cluster on the same hosts is untouched


def test_down_removes_everything_of_one_cluster_only(lab, clusters) -> None:  # type: ignore[no-untyped-def]
    a, b = clusters
    launch(lab, a)  # serving again, so down has a head to drain
    wait_serving(a)
    r = cli("down", str(a))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "RECAP: down" in r.stdout
    assert leftovers(lab, "lc-a", 30000) == []
    _, head_log = lab.exec("node-1", "journalctl -u glm5-lc-a-r0.service -o cat | tail -n 20")
    assert "Draining requests" in head_log  # the head got SIGTERM and drained
    _, worker_log = lab.exec("node-2", "journalctl -u glm5-lc-a-r0.service -o cat | tail -n 20")
    assert "Received shutdown from node 0" in worker_log  # and then shut its group down
    assert status(b)[0] == 0 and leftovers(lab, "lc-b", 30100) != []
    again = cli("down", str(a))
    assert again.returncode == 0 and "changed=0" in again.stdout and "changed=1" not in again.stdout
    rc, doc = status(a)
    assert rc == 1 and doc["replicas"][0]["verdict"] == "stopped"


def test_up_after_down_serves_again(lab, clusters) -> None:  # type: ignore[no-untyped-def]
    a, _ = clusters
    launch(lab, a)
    assert wait_serving(a)["serving"] is True


def test_docker_runtime_status_broken_and_down(lab, clusters, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    _, b = clusters
    registry = yaml.safe_load(lab.inventory.read_text())["stack"]["registry_mirror"]
    d = write_inventory(lab, tmp_path / "d.yaml", "lc-d", 30200, 20200,
                        docker_image=f"{registry}/lmsysorg/sglang:v0.5.23")
    launch(lab, d)
    doc = wait_serving(d)
    assert doc["runtime"] == "docker" and doc["replicas"][0]["ranks"][1]["target"] == "glm5-lc-d-r0"
    lab.exec("node-2", "docker kill glm5-lc-d-r0")
    time.sleep(2)
    rc, doc = status(d)
    assert rc == 1 and doc["replicas"][0]["verdict"] == "broken" and doc["replicas"][0]["failing"]["rank"] == 1
    r = cli("down", str(d))
    assert r.returncode == 0, r.stdout + r.stderr
    assert leftovers(lab, "lc-d", 30200) == []
    assert status(b)[0] == 0
