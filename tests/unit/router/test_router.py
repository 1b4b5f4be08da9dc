"""The router pieces: the /workers script against a stand-in of the real API, the parsers on
real captures, the venv/unit tasks, and the router's place in the topology."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glm5cluster.commands import CommandResult, Secret, Shell, Upload
from glm5cluster.facts.rank_state import RankState
from glm5cluster.facts.router import ROUTER_PY, parse_reply, parse_state
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.nodes import resolve_nodes
from glm5cluster.runtime.router import router_argv, router_runtime, router_service
from glm5cluster.tasks.base import Change, HostContext, NoOp, Skip
from glm5cluster.tasks.router import (
    RouterParams,
    RouterUnit,
    RouterVenv,
    RouterVenvState,
    api_command,
    router_state_fact,
)
from tests.unit.conftest import make_inventory
from tests.unit.router.fake_router import FakeRouter

DATA = Path(__file__).parent


@pytest.fixture
def fake() -> Iterator[FakeRouter]:
    f = FakeRouter()
    yield f
    f.close()


def run_script(port: int, ops: list[list[Any]], key: str | None = None) -> tuple[Any, CommandResult]:
    cmd = api_command(port, ops, key, "t", 30)
    stdin = cmd.stdin.value if isinstance(cmd.stdin, Secret) else cmd.stdin
    p = subprocess.run([sys.executable, *cmd.argv[1:]], input=stdin, capture_output=True, text=True, timeout=60)
    res = CommandResult("python3 -c ROUTER_PY", p.returncode, p.stdout, p.stderr)
    return parse_reply(res), res


def test_parse_state_reads_the_real_workers_listing() -> None:
    doc = json.loads((DATA / "workers_one-healthy.json").read_text())
    st = parse_state({"live": True, "ready": True, "readiness": "", **doc})
    (w,) = st.workers
    assert (w.id, w.url, w.healthy, w.load, w.model) == (
        "4631c0cc-039f-47c5-9079-839c5e710656", "http://127.0.0.1:18001", True, 0, "glm-5-fp8")
    assert st.worker("http://127.0.0.1:18001") is w and st.worker("http://x:1") is None


def test_script_registers_waits_healthy_and_removes(fake: FakeRouter) -> None:
    urls = ["http://10.0.0.1:30000", "http://10.0.0.3:30000"]
    reply, _ = run_script(fake.port, [["live", 5], ["add", urls], ["healthy", urls, 5]], key="sekret")
    assert reply.ok, reply
    assert sorted(w.url for w in reply.state.workers) == urls and reply.state.ready
    posts = [c for c in fake.calls if c[0] == "POST"]
    assert [p[2] for p in posts] == [{"url": u, "api_key": "sekret"} for u in urls]
    # already registered: no second POST
    reply, _ = run_script(fake.port, [["add", urls]])
    assert reply.ok and len([c for c in fake.calls if c[0] == "POST"]) == 2
    reply, _ = run_script(fake.port, [["remove", urls[:1], 5]])
    assert reply.ok and [w.url for w in reply.state.workers] == urls[1:]
    assert any(c[0] == "DELETE" for c in fake.calls) and not any("add_worker" in c[1] for c in fake.calls)


def test_script_names_a_worker_the_router_cannot_reach(fake: FakeRouter) -> None:
    reply, _ = run_script(fake.port, [["add", ["http://dead:30000"]], ["healthy", ["http://dead:30000"], 1]])
    assert not reply.ok
    assert "http://dead:30000 (not registered: the router could not reach its /health)" in reply.error
    assert reply.state.ready is False and "insufficient healthy workers" in reply.state.readiness


def test_script_says_when_the_router_does_not_answer() -> None:
    reply, _ = run_script(1, [["live", 1]])
    assert not reply.ok and "router not answering on http://127.0.0.1:1" in reply.error


def test_api_key_travels_on_stdin_only() -> None:
    cmd = api_command(8000, [["add", ["http://a:1"]]], "sekret", "t", 10)
    assert isinstance(cmd.stdin, Secret) and "sekret" in cmd.stdin.value
    assert not any("sekret" in a for a in cmd.argv)
    assert isinstance(api_command(8000, [], None, "t", 10).stdin, str)


def test_parse_reply_of_a_script_that_did_not_run() -> None:
    r = parse_reply(CommandResult("x", 127, "", "python3: not found"))
    assert not r.ok and "did not run (exit 127)" in r.error


def router_inv(**router: Any) -> Inventory:
    return make_inventory(hosts=3, replicas={"router": {"host": "n2", **router}},
                          serving={"package_index": "http://172.28.77.2:8082/simple"})


def ctx_for(inv: Inventory, host: str) -> HostContext:
    return HostContext(node=next(n for n in resolve_nodes(inv) if n.name == host), inventory=inv)


def test_router_argv_uses_the_real_cli_options() -> None:
    inv = router_inv(port=8001, policy="round_robin", health_check_interval=2)
    argv = router_argv(inv, router_runtime(inv).python)
    assert argv == ["/opt/glm5cluster/router-venv/bin/python", "-m", "sglang_router.launch_router", "--host",
                    "0.0.0.0", "--port", "8001", "--policy", "round_robin", "--health-check-interval-secs", "2",
                    "--log-level", "info"]
    # every option is one the 0.3.2 launcher knows (from `launch_router --help`)
    known = {"--host", "--port", "--policy", "--health-check-interval-secs", "--log-level"}
    assert {a for a in argv if a.startswith("--")} <= known
    unit = router_runtime(router_inv()).install(router_service(router_inv())).definition
    assert 'Environment="NO_COLOR=1"' in unit and 'ExecStart="/opt/glm5cluster/router-venv/bin/python"' in unit
    assert "Restart=on-failure" in unit and "Restart=no" not in unit and "TimeoutStopSec=30" in unit


def test_venv_task_installs_the_pin_from_the_index_on_the_router_host_only() -> None:
    inv = router_inv()
    task = RouterVenv()
    assert isinstance(task.plan(RouterParams(), ctx_for(inv, "n0"), {}), Skip)
    out = task.plan(RouterParams(), ctx_for(inv, "n2"), {"venv": RouterVenvState(False, None)})
    assert isinstance(out, Change)
    pip = out.commands[1]
    assert isinstance(pip, Shell) and "sglang-router==0.3.2" in pip.argv
    assert pip.argv[pip.argv.index("--index-url") + 1] == "http://172.28.77.2:8082/simple"
    assert isinstance(task.plan(RouterParams(), ctx_for(inv, "n2"), {"venv": RouterVenvState(True, "0.3.2")}), NoOp)


def _state(state: str, digest: str = "") -> RankState:
    return RankState(state, identity="inv1", digest=digest, target="glm5-t-router.service", kind="unit")


def test_unit_task_starts_restarts_and_leaves_alone_through_the_seam() -> None:
    inv = router_inv()
    task = RouterUnit()
    want = router_runtime(inv).install(router_service(inv)).digest
    new = task.plan(RouterParams(), ctx_for(inv, "n2"), {"service": _state("absent")})
    assert isinstance(new, Change) and isinstance(new.commands[0], Upload) and len(new.commands) == 2
    assert new.commands[0].dest == "/etc/systemd/system/glm5-t-router.service"
    start = new.commands[1]
    # the seam's start stamps the invocation in the unit's drop-in directory (removed with the unit)
    assert isinstance(start, Shell) and start.script is not None
    assert "/etc/systemd/system/glm5-t-router.service.d/glm5cluster.launched" in start.script
    assert isinstance(task.plan(RouterParams(), ctx_for(inv, "n2"), {"service": _state("active", want)}), NoOp)
    changed = task.plan(RouterParams(), ctx_for(inv, "n2"), {"service": _state("active", "0" * 32)})
    assert isinstance(changed, Change) and "definition changed" in changed.summary
    stop = changed.commands[1]  # the seam's one stop-with-grace before the new start
    assert isinstance(stop, Shell) and stop.script is not None and "_term 30" in stop.script
    dead = task.plan(RouterParams(), ctx_for(inv, "n2"), {"service": _state("failed", want)})
    assert isinstance(dead, Change) and "was failed" in dead.summary
    assert task.facts(RouterParams(), ctx_for(inv, "n0")) == {}
    fact = router_state_fact(ctx_for(inv, "n2"))
    assert fact.target == "glm5-t-router.service" and fact.stamp.endswith("glm5-t-router.service.d/glm5cluster.launched")


def test_script_is_plain_python3() -> None:
    compile(ROUTER_PY, "ROUTER_PY", "exec")
