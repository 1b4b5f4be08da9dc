"""Pure parts of launch/readiness/preflight/smoke: state parsing, the gang decision, checks."""

from __future__ import annotations

from pathlib import Path

from glm5cluster.commands import CommandResult
from glm5cluster.engine.procedures.readiness import fatal_now
from glm5cluster.engine.procedures.smoke import verdict
from glm5cluster.facts.network import Interface, Interfaces
from glm5cluster.facts.rank_state import RankState
from glm5cluster.facts.serving import parse_port_holders, parse_stamp
from glm5cluster.facts.sglang_log import read_log
from glm5cluster.model.inventory import Secrets
from glm5cluster.model.loader import load_inventory
from glm5cluster.runtime import UnitRuntime
from glm5cluster.runtime.rank import rank_launch
from glm5cluster.runtime.survey import Item, Survey
from glm5cluster.tasks import preflight as P
from glm5cluster.tasks.launch import gang_plan
from glm5cluster.topology import plan_topology

INV = Path(__file__).resolve().parents[3] / "inventory" / "h200-bf16.yaml"


def _launches(api_key: str | None = None):  # type: ignore[no-untyped-def]
    loaded = load_inventory(INV)
    inv = loaded.inventory
    inv = inv.model_copy(update={"serving": inv.serving.model_copy(
        update={"secrets": Secrets(api_key_env="GLM5_API_KEY")})})
    topo = plan_topology(inv, loaded.nodes)
    rep = topo.replicas[0]
    rt = UnitRuntime(inv.serving.venv_path)
    return [rank_launch(inv, topo, rep, r, api_key, rt) for r in rep.ranks]


def test_gang_plan_noop_start_restart() -> None:
    ws = _launches()
    run = {w.host: RankState("active", "running", digest=w.digest) for w in ws}
    assert gang_plan(ws, run).action == "noop"
    dead = dict(run)
    dead[ws[1].host] = RankState("failed", "failed", exit_code=1)
    plan = gang_plan(ws, dead)
    assert plan.action == "restart" and f"rank 1 on {ws[1].host}: not running" in plan.summary
    changed = {w.host: RankState("active", "running", digest="old") for w in ws}
    assert "config changed" in gang_plan(ws, changed).summary
    assert gang_plan(ws, {w.host: RankState("absent") for w in ws}).action == "start"


def test_gang_plan_replaces_what_another_runtime_or_topology_left() -> None:
    ws = _launches()
    run = {w.host: RankState("active", "running", digest=w.digest) for w in ws}
    # after switching docker -> venv: the container of the same replica still serves on node 0
    stem = ws[0].service.stem
    ctr = Item("container", stem, stem, 0, 0, "running", "c0ffee")
    plan = gang_plan(ws, {w.host: RankState("absent") for w in ws}, {ws[0].host: (ctr,)})
    assert plan.action == "restart" and plan.stale == {ws[0].host: (ctr,)}
    assert "started by the docker runtime; the inventory says venv" in plan.summary
    # after a topology change: replica 1's old unit on a node that is now in replica 0
    old = Item("unit", "x", stem[:-1] + "1", 1, 1, "active")
    plan = gang_plan(ws, run, {ws[1].host: (old,)})
    assert plan.action == "restart" and "earlier topology" in plan.summary
    # the router is not a rank: left alone
    router = Item("unit", "r", stem[:-2] + "router", None, None, "active")
    assert gang_plan(ws, run, {ws[0].host: (router,)}).action == "noop"


def test_api_key_changes_the_digest_but_never_appears_in_commands() -> None:
    a, b = _launches("k1"), _launches("k2")
    assert a[0].digest != b[0].digest and a[1].digest == b[1].digest  # only the head gets the key
    assert a[0].secrets is not None and "k1" not in repr(a[0].secrets)
    for w in a:
        assert "k1" not in w.runtime.start(w.service, w.installed).command_line()
        assert "k1" not in w.runtime.stop_script(w.target, head=w.is_head, drain=1, grace=1)
        assert "k1" not in w.installed.definition and b"k1" not in w.env.content
        assert all(b"k1" not in up.content for up in w.installed.uploads)


def test_port_holders_and_ownership() -> None:
    text = ('port=30000 pid=42 proc=python cgroup=0::/system.slice/glm5-c-r0.service \n'
            'port=20000 pid=- proc=- cgroup=\n')
    hs = parse_port_holders(text)
    assert hs[0].pid == 42 and hs[1].pid is None
    ours = Survey(units=(Item("unit", "glm5-c-r0.service", "glm5-c-r0", 0, 0, "active"),))
    assert P.check_ports("n1", [30000], hs, ours) == []
    assert P.port_notes([30000], hs, ours) == ["port 30000 held by this cluster's glm5-c-r0.service"]
    assert P.check_ports("n1", [30000], hs, None)[0].message.startswith("TCP port 30000")
    assert P.check_ports("n1", [30000], hs, Survey())[0].message.startswith("TCP port 30000")


def test_port_held_by_the_clusters_container_or_old_unit_is_ours() -> None:
    cid = "4f2a" * 16
    text = (f"port=30000 pid=7 proc=python3 cgroup=0::/system.slice/docker-{cid}.scope \n"
            "port=20000 pid=8 proc=python3 cgroup=0::/system.slice/glm5-c-r1.service \n")
    hs = parse_port_holders(text)
    ours = Survey(units=(Item("unit", "glm5-c-r1.service", "glm5-c-r1", 1, 1, "active"),),
                  containers=(Item("container", "glm5-c-r0", "glm5-c-r0", 0, 0, "running", cid),))
    assert P.check_ports("n1", [30000, 20000], hs, ours) == []
    stopped = Survey(containers=(Item("container", "glm5-c-r0", "glm5-c-r0", 0, 0, "exited", cid),))
    assert "python3 (pid 7)" in P.check_ports("n1", [30000], hs, stopped)[0].message


def test_interface_checks() -> None:
    ifs = Interfaces((Interface("eth0", True, 1500, ("10.0.0.5/24",)),))
    assert P.check_interface("n", "10.0.0.5", None, ifs) == []
    assert P.check_interface("n", "10.0.0.5", "eth0", ifs) == []
    assert "does not exist" in P.check_interface("n", "10.0.0.5", "ib0", ifs)[0].message
    assert "does not carry" in P.check_interface("n", "10.0.0.6", "eth0", ifs)[0].message


def test_weights_checks_name_the_node() -> None:
    ok = parse_stamp(CommandResult("", 0, '{"present": true, "repo": "zai-org/GLM-5", "commit": "c1", "files": 3, "missing": []}'))
    bad = parse_stamp(CommandResult("", 0, '{"present": true, "repo": "zai-org/GLM-5", "commit": "c1", "files": 3, "missing": ["m-2.safetensors"]}'))
    probs = P.check_weights(["a", "b"], {"a": ok, "b": bad}, "zai-org/GLM-5", "main", False, "/w")
    assert [p.host for p in probs] == ["b"] and "m-2.safetensors" in probs[0].message
    other = parse_stamp(CommandResult("", 0, '{"present": true, "repo": "zai-org/GLM-5", "commit": "c2", "files": 3, "missing": []}'))
    assert "revision differs" in P.check_weights(["a", "b"], {"a": ok, "b": other}, "zai-org/GLM-5", "main", False, "/w")[0].message


def test_runtime_parity() -> None:
    probs = P.check_runtime_parity(["a", "b"], {"a": "0.5.23", "b": ""}, "0.5.23", None)
    assert probs[0].host == "b" and "not installed in the venv" in probs[0].message
    probs = P.check_runtime_parity(["a", "b"], {"a": "sha256:1", "b": ""}, "0.5.23", "img:1")
    assert [p.host for p in probs] == ["b"] and "image img:1 is not present" in probs[0].message


def test_fatal_now_ignores_connection_refused_warnings() -> None:
    warn = read_log(["[W socket.cpp:1] [c10d] The client socket has failed to connect (errno: 111 - Connection refused)"]).failure
    err = read_log(["torch.distributed.DistStoreError: Timed out after 31 seconds waiting for clients. 1/2 clients joined."]).failure
    oom = read_log(["torch.OutOfMemoryError: CUDA out of memory."]).failure
    assert not fatal_now(warn) and fatal_now(err) and fatal_now(oom)


def test_smoke_verdict() -> None:
    good = {"thinking": {"reasoning": True, "content": True}, "instruct": {"reasoning": False, "content": True},
            "tool": {"tools": ["get_weather"]}}
    assert verdict(good) == []
    assert "instruct" in verdict({**good, "instruct": {"reasoning": True, "content": True}})[0]
    assert "tool" in verdict({**good, "tool": {"tools": []}})[0]
