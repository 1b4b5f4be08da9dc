"""The product's main job on a 2-node H200 lab (tp16 BF16) over real SSH, both runtimes, every
cluster brought up by the real `glm5cluster up INV --yes` (see ``up_helpers``):

- `up` from a fresh lab ends serving, smoke tests passed, endpoint/model/curl printed; a re-run
  (with --yes, and interactive with no terminal) changes nothing, ends in seconds and still
  proves the cluster serves;
- a docker-runtime cluster on the same hosts (another name and ports) does the same;
- `status` and `logs` of a serving cluster;
- a rank killed while serving: `status` shows the replica broken; `up` restarts the whole group
  (both runtimes);
- faults reported within 15 s naming rank, host and cause: a crash during load and OOM at load
  (both runtimes); the dist-init port blocked between the hosts (preflight, before launch); a
  shard missing on one node (before launch: refused for a `path` source, refetched alone from
  a peer for a `hub` source);
- a cluster switched from docker to venv is reported serving (by its container) and `up`
  replaces the container with the unit; after a GPU-count change the old rank-1 unit on what is
  now another replica's head is the cluster's own (not a foreign port holder) and `down` removes
  it;
- `down` leaves no unit, container or process of the cluster and leaves the other cluster
  serving; a second `down` changes nothing; `up` after `down` serves again.

One lab for the module; tests run in order and build on each other's state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import up_helpers as U

pytestmark = pytest.mark.lab

SUBNET = "172.28.93.0/24"
HEAD = "http://172.28.93.11"
VENV = ("lab-up2", "venv", 30000, 20000)  # cluster, runtime, http port, dist-init port
DOCKER = ("up2-dk", "docker", 30100, 20100)
RUNTIMES = {"venv": VENV, "docker": DOCKER}


@pytest.fixture(scope="module")
def lab(make_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    lab = make_lab("up2", hosts=2, gpu="H200", subnet=SUBNET, **U.LAB_HUB)
    lab.tmp = tmp_path_factory.mktemp("up2")
    lab.pb = U.playbook_args(lab.tmp)
    yield lab
    U.down_lab(lab)


def inv(lab: Any, which: tuple[str, str, int, int], tag: str = "ok", **kw: Any) -> Path:
    cluster, runtime, port, dist = which
    return U.inventory(lab, Path(lab.tmp) / f"{cluster}-{tag}.yaml", cluster=cluster, runtime=runtime,
                       http_port=port, dist_port=dist, **kw)


def ids(lab: Any, which: tuple[str, str, int, int]) -> dict[str, str]:
    return {h: U.identity(lab, h, which[0], which[1]) for h in lab.hosts}


@pytest.mark.parametrize("which", [VENV, DOCKER], ids=["venv", "docker"])
def test_up_serves_then_rerun_changes_nothing(lab: Any, which: tuple[str, str, int, int]) -> None:
    path = inv(lab, which)
    rc, out, secs = U.up(path, lab.pb)
    assert rc == 0, out
    U.serving_ok(out, f"{HEAD}:{which[2]}")
    first = ids(lab, which)
    assert all(first.values()), first
    rc, out, secs = U.up(path, lab.pb)
    assert rc == 0, out
    U.changed_nothing(out)
    U.serving_ok(out, f"{HEAD}:{which[2]}")  # readiness and smoke ran again
    assert secs < 30, f"re-run took {secs:.1f}s"
    assert ids(lab, which) == first
    # interactive (no --yes) with nothing to change: no question asked, readiness and smoke run
    rc, out, secs = U.up(path, lab.pb, yes=False)
    assert rc == 0, out
    U.changed_nothing(out)
    U.serving_ok(out, f"{HEAD}:{which[2]}")
    assert ids(lab, which) == first


def test_status_and_logs_of_a_serving_cluster(lab: Any) -> None:
    path = inv(lab, VENV)
    rc, doc = U.status(path)
    assert rc == 0 and doc["serving"] is True
    rep = doc["replicas"][0]
    assert rep["verdict"] == "serving" and rep["health"] == 200
    assert rep["served_models"] == ["zai-org/GLM-5"] and rep["sglang_version"] == "0.5.23"
    assert [(r["rank"], r["host"], r["state"]) for r in rep["ranks"]] == [(0, "node-1", "active"), (1, "node-2", "active")]
    rc, out, _ = U.cli("status", str(path))
    assert rc == 0 and "replica 0: SERVING" in out
    rc, out, _ = U.cli("logs", str(path), "--lines", "20")
    assert rc == 0, out
    lines = out.splitlines()
    assert {ln.split(" | ")[0].strip() for ln in lines} == {"node-1 r0", "node-2 r0"}
    stamps = [ln.split(" | ", 1)[1].split(" ", 1)[0] for ln in lines]
    assert stamps == sorted(stamps)
    rc, out, _ = U.cli("logs", str(path), "--node", "node-2", "--since", "1h")
    assert rc == 0 and out and all(ln.startswith("node-2 r0 |") for ln in out.splitlines())


@pytest.mark.parametrize("which", [VENV, DOCKER], ids=["venv", "docker"])
def test_rank_killed_while_serving_then_up_restarts_the_whole_group(
        lab: Any, which: tuple[str, str, int, int]) -> None:
    cluster, runtime, _, _ = which
    path = inv(lab, which)
    before = ids(lab, which)
    kill = (f"docker kill glm5-{cluster}-r0" if runtime == "docker"
            else f"systemctl kill -s SIGKILL glm5-{cluster}-r0.service")
    rc, out = lab.exec("node-2", kill)
    assert rc == 0, out
    rep = U.wait_status(path, "broken")
    assert rep["verdict"] == "broken", rep
    assert rep["failing"]["rank"] == 1 and rep["failing"]["host"] == "node-2", rep
    other = VENV if which is DOCKER else DOCKER
    assert U.status(inv(lab, other))[0] == 0  # the other cluster on the same hosts serves on
    rc, out, _ = U.up(path, lab.pb)
    assert rc == 0, out
    assert "start the whole group" in out, out
    U.serving_ok(out, f"{HEAD}:{which[2]}")
    after = ids(lab, which)
    assert all(after[h] and after[h] != before[h] for h in lab.hosts), (before, after)


@pytest.mark.parametrize("which", [VENV, DOCKER], ids=["venv", "docker"])
def test_rank_crash_during_load_is_named(lab: Any, which: tuple[str, str, int, int]) -> None:
    env = {"SGLANG_SIM_LOAD_SECONDS": "8", "SGLANG_SIM_CRASH_AFTER": "4", "SGLANG_SIM_FAULT_RANK": "1"}
    rc, out, _ = U.up(inv(lab, which, "crash", env=env), lab.pb)
    assert rc == 1, out
    assert "rank 1 on node-2" in out, out
    assert U.noticed(out) <= 15


@pytest.mark.parametrize("which", [VENV, DOCKER], ids=["venv", "docker"])
def test_oom_at_load_is_named(lab: Any, which: tuple[str, str, int, int]) -> None:
    env = {"SGLANG_SIM_OOM_AT_LOAD": "1", "SGLANG_SIM_FAULT_RANK": "1"}
    rc, out, _ = U.up(inv(lab, which, "oom", env=env), lab.pb)
    assert rc == 1, out
    assert "rank 1 on node-2: out of GPU memory" in out, out
    assert "mem-fraction-static" in out
    assert U.noticed(out) <= 15


def test_blocked_dist_init_port_is_caught_by_preflight(lab: Any) -> None:
    block = "iptables -I INPUT -p tcp --dport 20000 -s 172.28.93.12 -j DROP"
    rc, out = lab.exec("node-1", block)
    assert rc == 0, f"no working iptables in the lab host: {out}"
    try:
        lab.exec("node-1", f"systemctl stop glm5-{VENV[0]}-r0.service")  # probed by preflight's listener
        rc, out, secs = U.up(inv(lab, VENV), lab.pb)
    finally:
        lab.exec("node-1", block.replace("-I INPUT", "-D INPUT"))
    assert rc == 1, out
    assert "node-2: FAILED: node-2: cannot reach the head node-1 at 172.28.93.11:20000" in out, out
    assert "preflight (network, ports): 1 ok, 1 failed" in out, out  # the first step after facts
    assert "launch: 1 skipped" in out and "changed=1" not in out  # nothing launched
    assert secs < 45


def test_missing_shard_is_caught_before_launch(lab: Any) -> None:
    _, out = lab.exec("node-2", f"ls {U.WEIGHTS} | grep -m1 safetensors$")
    shard = f"{U.WEIGHTS}/{out.strip()}"
    assert out.strip(), out
    lab.exec("node-2", f"mv {shard} {shard}.away")
    try:  # weights already staged (`path`): verified only, refused before launch
        rc, out, _ = U.up(inv(lab, VENV, "path", source={"kind": "path"}), lab.pb)
    finally:
        lab.exec("node-2", f"mv {shard}.away {shard}")
    assert rc == 1, out
    assert re.search(rf"node-2: FAILED: .*missing.*{re.escape(Path(shard).name)}", out), out
    assert "] launch:" not in out or "launch: 1 skipped" in out, out
    assert "changed=1" not in out  # nothing launched
    lab.exec("node-2", f"rm {shard}")
    rc, out, _ = U.up(inv(lab, VENV), lab.pb)  # from the hub: only that file comes again
    assert rc == 0, out
    assert re.search(r"node-2: changed: fetched 1 files .* from (peer node-1|hub)", out), out
    U.serving_ok(out, f"{HEAD}:30000")


SWITCH = ("up2-sw", "docker", 30200, 20200)


def test_ranks_are_found_whatever_runtime_or_topology_started_them(lab: Any) -> None:
    """Switch a serving docker cluster to venv, then change the GPU count: status, preflight,
    launch and down still treat the cluster's own ranks as its own."""
    docker = inv(lab, SWITCH)
    rc, out, _ = U.up(docker, lab.pb)
    assert rc == 0, out
    venv = inv(lab, ("up2-sw", "venv", 30200, 20200), tag="venv")
    _, doc = U.status(venv)  # the container serves: not "not deployed"
    rep = doc["replicas"][0]
    assert rep["verdict"] == "serving", rep
    assert [r["target"] for r in rep["ranks"]] == ["glm5-up2-sw-r0", "glm5-up2-sw-r0"]
    assert all("started by the docker runtime" in (r["note"] or "") for r in rep["ranks"]), rep
    rc, out, _ = U.up(venv, lab.pb, "--check", "-v")
    assert "in use by" not in out and "port 30200 held by this cluster's glm5-up2-sw-r0" in out, out
    assert "started by the docker runtime; the inventory says venv" in out, out
    rc, out, _ = U.up(venv, lab.pb)  # the container goes, the unit serves
    assert rc == 0, out
    U.serving_ok(out, f"{HEAD}:30200")
    for host in lab.hosts:
        assert lab.exec(host, "docker ps -aq --filter name=glm5-up2-sw-r0")[1].strip() == ""
    assert all(ids(lab, ("up2-sw", "venv", 30200, 20200)).values())
    # 16 GPUs per host: one node per replica, node-2 becomes replica 1's head while replica 0's
    # rank-1 unit still serves there
    doc = yaml.safe_load(venv.read_text())
    doc["cluster"]["gpu"]["count"] = 16
    wide = Path(lab.tmp) / "up2-sw-16.yaml"
    wide.write_text(yaml.safe_dump(doc, sort_keys=False))
    rc, out, _ = U.up(wide, lab.pb, "--check", "-v")
    assert "in use by" not in out and "port 30200 held by this cluster's glm5-up2-sw-r0.service" in out, out
    _, doc = U.status(wide)
    rep1 = doc["replicas"][1]
    assert rep1["ranks"][0]["host"] == "node-2" and rep1["verdict"] == "broken", rep1
    assert rep1["ranks"][0]["others"] == [{"name": "glm5-up2-sw-r0.service", "state": "active", "runtime": "venv"}]
    assert "glm5-up2-sw-r0.service on node-2 (active)" in rep1["reason"]
    rc, out, _ = U.cli("down", str(wide))
    assert rc == 0, out
    assert U.leftovers(lab, "up2-sw", 30200) == []


def test_down_leaves_nothing_and_the_other_cluster_serving(lab: Any) -> None:
    venv, docker = inv(lab, VENV), inv(lab, DOCKER)
    for path in (venv, docker):  # both serving (the fault tests left them broken)
        rc, out, _ = U.up(path, lab.pb)
        assert rc == 0, out
    rc, out, _ = U.cli("down", str(venv))
    assert rc == 0, out
    assert U.leftovers(lab, VENV[0], VENV[2]) == []
    _, head_log = lab.exec("node-1", f"journalctl -u glm5-{VENV[0]}-r0.service -o cat | tail -n 20")
    assert "Draining requests" in head_log  # the head got SIGTERM first and drained
    assert U.status(docker)[0] == 0 and U.leftovers(lab, DOCKER[0], DOCKER[2]) != []
    rc, out, _ = U.cli("down", str(venv))
    assert rc == 0 and "changed=0" in out and "changed=1" not in out, out
    assert U.wait_status(venv, "stopped")["verdict"] == "stopped"
    rc, out, _ = U.up(venv, lab.pb)  # up after down serves again
    assert rc == 0, out
    U.serving_ok(out, f"{HEAD}:30000")
    rc, out, _ = U.cli("down", str(docker))
    assert rc == 0, out
    assert U.leftovers(lab, DOCKER[0], DOCKER[2]) == []
    assert U.status(venv)[0] == 0
    rc, out, _ = U.cli("down", str(venv))
    assert rc == 0, out
    assert U.leftovers(lab, VENV[0], VENV[2]) == []
