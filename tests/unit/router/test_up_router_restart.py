"""`up` restarting a replica group that sits behind the router takes it out of the router first
(``launch``), so the router's circuit breakers never see it restart; ``router.register`` puts it
back after readiness and the smoke test. The ranks' hosts answer like systemd (a running unit
started with another config: the group restarts); the router host runs the /workers script
against the stand-in router."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.playbook import Playbook, Step
from glm5cluster.engine.procedures.launch import Launch, LaunchParams
from glm5cluster.engine.report import RunReport, Status
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.model.loader import load_inventory
from tests.unit.router.fake_router import FakeRouter
from tests.unit.router.test_router_procedures import INV, RouterHost, register

RUNNING = ("LoadState=loaded\nActiveState=active\nSubState=running\nInvocationID=inv1\n"
           "@@glm5cluster:clock@@\n100.0 1.0\n1700000000.0\n@@glm5cluster:stamp@@\nold-digest inv1\n")


@pytest.fixture
def fake() -> Iterator[FakeRouter]:
    f = FakeRouter()
    yield f
    f.close()


class Rank:
    """A rank host whose unit runs an older config; records when it is told to stop."""

    def __init__(self, name: str, events: list[str], running: bool = True) -> None:
        self.name, self.events, self.running = name, events, running

    def __call__(self, cmd: Shell) -> CommandResult | None:
        script = cmd.script or ""
        if "systemctl show -p" in script and "@@glm5cluster:survey@@" in script:  # read_rank
            return CommandResult("state", 0, RUNNING if self.running else "LoadState=not-found\n")
        if "_term" in script:
            self.events.append(f"stop {self.name}")
        return None


def run(tmp_path: Path, fake: FakeRouter, step: Step, events: list[str], running: bool = True,
        limit: tuple[str, ...] = ("n0", "gw")) -> RunReport:
    f = tmp_path / "inv.yaml"
    f.write_text(INV.format(port=fake.port))
    loaded = load_inventory(f)
    gw = RouterHost()

    def router_host(cmd: Shell) -> CommandResult:
        before = len(fake.calls)
        res = gw(cmd)
        events.extend(f"router {m} {p}" for m, p, _ in fake.calls[before:] if m in ("DELETE", "POST"))
        return res

    conns = {"gw": FakeConnection("gw", responder=router_host),
             "n0": FakeConnection("n0", responder=Rank("n0", events, running)),
             "n1": FakeConnection("n1", responder=Rank("n1", events, running))}
    with ConnectionPool(loaded.nodes, factory=lambda node: conns[node.name]) as pool:
        return run_playbook(Playbook("t", "-", (step,)), loaded.inventory, loaded.nodes, pool,
                            RunOptions(limit=limit))


def test_a_restarted_group_leaves_the_router_before_it_stops(tmp_path: Path, fake: FakeRouter) -> None:
    events: list[str] = []
    run(tmp_path, fake, register(), events, limit=())  # both replicas registered and healthy
    assert len(fake.workers) == 2
    events.clear()
    rep = run(tmp_path, fake, Step(0, "launch", "launch", Launch(), LaunchParams()), events)
    r = rep.steps[0].results["n0"]
    assert r.status is Status.CHANGED and r.summary.endswith("; taken out of the router first"), r
    assert events[0].startswith("router DELETE /workers/") and "stop n0" in events
    assert events.index("stop n0") > 0  # out of the router before the group stopped
    assert [w["url"] for w in fake.workers.values()] == ["http://10.0.0.2:30000"]  # replica 1 untouched
    # router.register puts it back once it serves
    events.clear()
    back = run(tmp_path, fake, register(), events, limit=())
    assert back.steps[0].results["gw"].status is Status.CHANGED
    assert sorted(w["url"] for w in fake.workers.values()) == ["http://10.0.0.1:30000", "http://10.0.0.2:30000"]


def test_a_group_not_running_or_a_router_not_there_changes_nothing_at_the_router(tmp_path: Path,
                                                                                 fake: FakeRouter) -> None:
    events: list[str] = []
    rep = run(tmp_path, fake, Step(0, "launch", "launch", Launch(), LaunchParams()), events, running=False)
    r = rep.steps[0].results["n0"]
    assert r.status is Status.CHANGED and "router" not in r.summary, r
    assert not any(e.startswith("router") for e in events)
    # running, but nothing registered (the router's first start comes later in `up`)
    rep = run(tmp_path, fake, Step(0, "launch", "launch", Launch(), LaunchParams()), events)
    assert "router" not in rep.steps[0].results["n0"].summary and not any(e.startswith("router") for e in events)
