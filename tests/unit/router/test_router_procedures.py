"""router.register (the end of `up`) and router.down (`down`) through the engine, with the
router host's commands run here: the /workers script against the stand-in router."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from glm5cluster.commands import CommandResult, Secret, Shell
from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.playbook import Playbook, Step
from glm5cluster.engine.procedures.router import (
    RegisterParams,
    RouterDown,
    RouterDownParams,
    RouterRegister,
    router_status,
)
from glm5cluster.engine.report import RunReport, Status
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.model.loader import load_inventory
from glm5cluster.topology import plan_topology
from tests.unit.router.fake_router import FakeRouter

INV = """\
version: 1
cluster: {{name: c, gpu: {{kind: H200, count: 8}}}}
hosts:
- {{name: n0, address: 10.0.0.1}}
- {{name: n1, address: 10.0.0.2}}
- {{name: gw, address: 10.0.0.9}}
model: {{repo: zai-org/GLM-5-FP8, weights_dir: /srv/models/GLM-5-FP8}}
replicas: {{count: 2, router: {{host: gw, port: {port}}}}}
"""


@pytest.fixture
def fake() -> Iterator[FakeRouter]:
    f = FakeRouter()
    yield f
    f.close()


class RouterHost:
    """The router host: python3 snippets run here (so they reach the stand-in on 127.0.0.1)."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self, cmd: Shell) -> CommandResult:
        if cmd.argv[:2] == ("python3", "-c"):
            stdin = cmd.stdin.value if isinstance(cmd.stdin, Secret) else cmd.stdin
            p = subprocess.run([sys.executable, *cmd.argv[1:]], input=stdin, capture_output=True, text=True, timeout=60)
            return CommandResult("py", p.returncode, p.stdout, p.stderr)
        if cmd.script and "systemctl show -p" in cmd.script:  # the seam's state probe of the unit
            props = "LoadState=not-found\nActiveState=inactive\n" if self.stopped else \
                "LoadState=loaded\nActiveState=active\nSubState=running\nInvocationID=i1\n"
            return CommandResult("state", 0, props + "@@glm5cluster:clock@@\n100.0 1.0\n1700000000.0\n"
                                 "@@glm5cluster:stamp@@\n")
        if cmd.script and "_term 30" in cmd.script and "rm -f -- /etc/systemd/system/glm5-c-router.service" in cmd.script:
            self.stopped = True  # the seam's stop-with-grace, then its removal
            return CommandResult("stop", 0, "")
        return CommandResult("x", 0, "")


def run(tmp_path: Path, fake: FakeRouter, step: Step, check: bool = False, limit: tuple[str, ...] = ()) -> tuple[RunReport, RouterHost]:
    f = tmp_path / "inv.yaml"
    f.write_text(INV.format(port=fake.port))
    loaded = load_inventory(f)
    gw = RouterHost()
    conns = {"gw": FakeConnection("gw", responder=gw), "n0": FakeConnection("n0"), "n1": FakeConnection("n1")}
    pb = Playbook("t", "-", (step,))
    with ConnectionPool(loaded.nodes, factory=lambda node: conns[node.name]) as pool:
        rep = run_playbook(pb, loaded.inventory, loaded.nodes, pool, RunOptions(check=check, limit=limit))
    return rep, gw


def register() -> Step:
    return Step(0, "router workers", "router.register", RouterRegister(), RegisterParams(timeout=5, request_timeout=10))


def test_register_both_replicas_then_nothing_changes(tmp_path: Path, fake: FakeRouter) -> None:
    plan, _ = run(tmp_path, fake, register(), check=True)
    assert plan.steps[0].results["gw"].status is Status.CHANGED
    assert "would register http://10.0.0.1:30000, http://10.0.0.2:30000" in plan.steps[0].results["gw"].summary
    assert not fake.workers  # check mode changed nothing
    rep, _ = run(tmp_path, fake, register())
    res = rep.steps[0].results
    assert res["gw"].status is Status.CHANGED, res["gw"]
    assert res["gw"].summary.startswith("2 replica(s) healthy in the router, smoke test passed through it")
    assert res["n0"].status is Status.SKIPPED and "the router runs on gw" in res["n0"].summary
    assert sorted(w["url"] for w in fake.workers.values()) == ["http://10.0.0.1:30000", "http://10.0.0.2:30000"]
    again, _ = run(tmp_path, fake, register())
    assert again.steps[0].results["gw"].status is Status.OK and again.changes == 0


def test_register_waits_while_the_routers_circuit_breakers_are_open(tmp_path: Path, fake: FakeRouter) -> None:
    # After every replica restarted at once the real router lists them healthy but answers
    # 503 no_available_workers until its breakers close; the smoke test waits for that.
    fake.open_circuit_requests = 4
    step = Step(0, "router workers", "router.register", RouterRegister(),
                RegisterParams(timeout=5, request_timeout=10, circuit_wait=30, circuit_poll=0.05))
    rep, _ = run(tmp_path, fake, step)
    r = rep.steps[0].results["gw"]
    assert r.status is Status.CHANGED, r
    assert r.summary.startswith("2 replica(s) healthy in the router, smoke test passed through it"), r
    assert fake.open_circuit_requests == 0
    fake.open_circuit_requests = 10**6  # never closes: named, after circuit_wait
    step = Step(0, "router workers", "router.register", RouterRegister(),
                RegisterParams(timeout=5, request_timeout=10, circuit_wait=0.2, circuit_poll=0.05))
    rep, _ = run(tmp_path, fake, step)
    r = rep.steps[0].results["gw"]
    assert r.status is Status.FAILED and "no_available_workers" in r.message, r


def test_a_replica_left_out_of_the_run_is_not_added_and_unknown_workers_go(tmp_path: Path, fake: FakeRouter) -> None:
    fake.workers["x"] = {"id": "x", "url": "http://10.9.9.9:30000", "is_healthy": True, "load": 0}
    rep, _ = run(tmp_path, fake, register(), limit=("n0", "gw"))
    r = rep.steps[0].results["gw"]
    assert r.status is Status.CHANGED and "not added (failed or not selected in this run): replica 1" in r.summary
    assert "deleted unknown http://10.9.9.9:30000" in r.summary
    assert [w["url"] for w in fake.workers.values()] == ["http://10.0.0.1:30000"]


def test_status_names_the_unhealthy_and_the_missing(tmp_path: Path, fake: FakeRouter) -> None:
    run(tmp_path, fake, register())
    next(iter(fake.workers.values()))["is_healthy"] = False
    f = tmp_path / "inv.yaml"
    loaded = load_inventory(f)
    topo = plan_topology(loaded.inventory, loaded.nodes)
    gw = RouterHost()
    st = router_status(lambda h, c: gw(c), loaded.inventory, topo)
    assert st.unhealthy == (0,) and st.missing == () and not st.ok and st.unit_state == "active"
    fake.workers.clear()
    st = router_status(lambda h, c: gw(c), loaded.inventory, topo)
    assert st.missing == (0, 1) and st.state.ready is False


def test_down_deregisters_then_removes_the_router_unless_kept(tmp_path: Path, fake: FakeRouter) -> None:
    run(tmp_path, fake, register())
    keep = Step(0, "router", "router.down", RouterDown(), RouterDownParams(replicas=[1]))
    rep, gw = run(tmp_path, fake, keep)
    assert rep.steps[0].results["gw"].summary == "deregistered http://10.0.0.2:30000" and not gw.stopped
    assert [w["url"] for w in fake.workers.values()] == ["http://10.0.0.1:30000"]
    whole = Step(0, "router", "router.down", RouterDown(), RouterDownParams())
    rep, gw = run(tmp_path, fake, whole)
    assert rep.steps[0].results["gw"].summary == ("deregistered http://10.0.0.1:30000; "
                                                   "stopped and removed glm5-c-router.service")
    assert gw.stopped and not fake.workers




class TornHost:
    """A host with a rank unit and the router unit of cluster c; records what the teardown ran."""

    def __init__(self) -> None:
        self.scripts: list[str] = []

    def __call__(self, cmd: Shell) -> CommandResult:
        line = cmd.command_line()
        self.scripts.append(line)
        if "systemctl list-units" in line:
            return CommandResult("", 0, "@@glm5cluster:survey@@\n"
                                        "unit\tglm5-c-r1.service\tactive\tGLM-5 SGLang c replica 1 rank 0/1\n"
                                        "unit\tglm5-c-router.service\tactive\tglm5cluster router of cluster c\n")
        return CommandResult("", 0)


@pytest.mark.parametrize("keep", [True, False])
def test_teardown_leaves_the_router_when_kept(tmp_path: Path, keep: bool) -> None:
    from glm5cluster.engine.procedures.teardown import Teardown, TeardownParams

    f = tmp_path / "inv.yaml"
    f.write_text(INV.format(port=8000))
    loaded = load_inventory(f)
    host = TornHost()
    conns = {n.name: FakeConnection(n.name, responder=host if n.name == "n1" else None) for n in loaded.nodes}
    pb = Playbook("down", "-", (Step(0, "down", "teardown", Teardown(), TeardownParams(keep_router=keep)),))
    with ConnectionPool(loaded.nodes, factory=lambda node: conns[node.name]) as pool:
        run_playbook(pb, loaded.inventory, loaded.nodes, pool, RunOptions(limit=("n1",)))
    acted = "\n".join(s for s in host.scripts if "systemctl list-units" not in s)
    assert "glm5-c-r1.service" in acted
    assert ("glm5-c-router" in acted) is (not keep)
