"""Pure parts of launch/readiness/preflight/smoke: state parsing, the gang decision, checks."""

from __future__ import annotations

from pathlib import Path

from glm5cluster.commands import CommandResult
from glm5cluster.engine.procedures.readiness import fatal_now
from glm5cluster.engine.procedures.smoke import verdict
from glm5cluster.facts.network import Interface, Interfaces
from glm5cluster.facts.serving import (
    RankState,
    epoch,
    parse_poll,
    parse_port_holders,
    parse_stamp,
    parse_state,
)
from glm5cluster.facts.sglang_log import read_log
from glm5cluster.model.inventory import Secrets
from glm5cluster.model.loader import load_inventory
from glm5cluster.tasks import preflight as P
from glm5cluster.tasks.launch import gang_plan, rank_launch, start_command, stop_command
from glm5cluster.topology import plan_topology

INV = Path(__file__).resolve().parents[3] / "inventory" / "h200-bf16.yaml"

SYSTEMD_FAILED = """LoadState=loaded
ActiveState=failed
SubState=failed
InvocationID=abc
MainPID=0
ExecMainStatus=1
ExecMainStartTimestamp=Sun 2026-11-29 21:53:49.104148 UTC
ExecMainExitTimestamp=Sun 2026-11-29 21:53:49.327712 UTC
now=1795989230
stamp=d1 abc
"""


def _launches(api_key: str | None = None):  # type: ignore[no-untyped-def]
    loaded = load_inventory(INV)
    inv = loaded.inventory
    inv = inv.model_copy(update={"serving": inv.serving.model_copy(
        update={"secrets": Secrets(api_key_env="GLM5_API_KEY")})})
    topo = plan_topology(inv, loaded.nodes)
    rep = topo.replicas[0]
    return [rank_launch(inv, topo, rep, r, api_key) for r in rep.ranks]


def test_parse_systemd_state_and_exit_time() -> None:
    st = parse_state("venv", SYSTEMD_FAILED)
    assert not st.running and st.exists and st.exit_code == 1 and st.digest == "d1"
    assert st.exited_at is not None and st.started_at is not None
    assert abs((st.exited_at - st.started_at) - 0.223564) < 1e-3


def test_stamp_of_another_invocation_is_ignored() -> None:
    st = parse_state("venv", SYSTEMD_FAILED.replace("stamp=d1 abc", "stamp=d1 other"))
    assert st.digest == ""


def test_parse_docker_state() -> None:
    text = ("id=c0ffee\nstatus=exited\nexit=137\nstarted=2026-11-29T21:40:47.123456789Z\n"
            "finished=2026-11-29T21:40:50.5Z\ndigest=abc\nnow=1\n")
    st = parse_state("docker", text)
    assert (st.running, st.exit_code, st.identity, st.digest) == (False, 137, "c0ffee", "abc")
    assert st.exited_at - st.started_at > 3  # type: ignore[operator]
    assert not parse_state("docker", "status=absent\nnow=1\n").exists


def test_parse_poll_splits_state_and_log() -> None:
    st, lines = parse_poll("docker", "status=running\n@@glm5cluster:log@@\na\nb\n")
    assert st.running and lines == ["a", "b"]


def test_epoch_formats() -> None:
    assert epoch("@12") == 12.0
    assert epoch("n/a") is None and epoch("0001-01-01T00:00:00Z") is None


def test_gang_plan_noop_start_restart() -> None:
    ws = _launches()
    run = {w.host: RankState(True, True, digest=w.digest, detail="active/running") for w in ws}
    assert gang_plan(ws, run).action == "noop"
    dead = dict(run)
    dead[ws[1].host] = RankState(True, False, exit_code=1, detail="failed/failed")
    plan = gang_plan(ws, dead)
    assert plan.action == "restart" and f"rank 1 on {ws[1].host}: not running" in plan.summary
    changed = {w.host: RankState(True, True, digest="old", detail="active/running") for w in ws}
    assert "config changed" in gang_plan(ws, changed).summary
    assert gang_plan(ws, {w.host: RankState(False, False) for w in ws}).action == "start"


def test_api_key_changes_the_digest_but_never_appears_in_commands() -> None:
    a, b = _launches("k1"), _launches("k2")
    assert a[0].digest != b[0].digest and a[1].digest == b[1].digest  # only the head gets the key
    assert a[0].secrets is not None and "k1" not in repr(a[0].secrets)
    for w in a:
        for cmd in (start_command(w), stop_command(w, w.is_head)):
            assert "k1" not in cmd.command_line()
        assert "k1" not in (w.unit_content or "") and "k1" not in w.env_content


def test_port_holders_and_ownership() -> None:
    text = ('port=30000 pid=42 proc=python cgroup=0::/system.slice/glm5-c-r0.service \n'
            'port=20000 pid=- proc=- cgroup=\n')
    hs = parse_port_holders(text)
    assert hs[0].pid == 42 and hs[1].pid is None
    own = RankState(True, True)
    assert P.check_ports("n1", [30000], hs, own, "glm5-c-r0.service") == []
    assert P.check_ports("n1", [30000], hs, None, "glm5-c-r0.service")[0].message.startswith("TCP port 30000")


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
    probs = P.check_runtime_parity(["a", "b"], {"a": "0.5.23", "b": ""}, "venv", "0.5.23", "img")
    assert probs[0].host == "b"


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
