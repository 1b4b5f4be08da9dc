"""Ctrl-C during a run: no new work starts, in-flight commands end (their connections are
closed), procedures' cleanups run on fresh connections, every host's state is reported, exit 130.

Ctrl-C is delivered as the real thing: SIGINT to the main thread, which called ``run_playbook``
(as the CLI does), wherever it is blocked."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.pool import ConnectionPool, fan_out
from glm5cluster.engine import procedure
from glm5cluster.engine.events import EventKind, EventRecorder
from glm5cluster.engine.playbook import Playbook, Step
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.report import INTERRUPTED, Status, StepResult
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.errors import Interrupted
from glm5cluster.tasks.base import Change, HostContext, Params, Task
from tests.engine.fakes import node


class CmdParams(Params):
    what: str


class RunCmd(Task[CmdParams]):
    name = "run_cmd"
    Params = CmdParams
    privileged = False

    def plan(self, params: CmdParams, ctx: HostContext, facts: Mapping[str, Any]) -> Any:
        return Change([Shell.sh(params.what)], params.what)


class Hosts:
    """Fake hosts whose ``block`` commands hang until their connection is closed."""

    def __init__(self, names: list[str]) -> None:
        self.nodes = [node(h) for h in names]
        self.made: list[FakeConnection] = []
        self.started = threading.Semaphore(0)
        self.ran: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def factory(self, n: Any) -> FakeConnection:
        conn = FakeConnection(n.name)

        def respond(cmd: Shell) -> CommandResult:
            with self.lock:
                self.ran.append((n.name, cmd.command_line()))
            if "block" in cmd.command_line():
                self.started.release()
                while not conn.closed:  # an in-flight command ends when its connection closes
                    time.sleep(0.01)
                from glm5cluster.errors import TransportError

                raise TransportError(f"{n.name}: connection lost")
            return CommandResult(cmd.display(), 0)

        conn.responder = respond
        self.made.append(conn)
        return conn

    def pool(self) -> ConnectionPool:
        return ConnectionPool(self.nodes, factory=self.factory)


def ctrl_c_when(started: threading.Semaphore, count: int) -> threading.Thread:
    def fire() -> None:
        for _ in range(count):
            assert started.acquire(timeout=10)
        time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


def playbook(*steps: tuple[str, Any, Any]) -> Playbook:
    return Playbook("t", "t.yaml", tuple(Step(i, name, type(task).name, task, params)
                                         for i, (name, task, params) in enumerate(steps)))


def test_ctrl_c_during_a_task_step_stops_the_run_and_names_each_hosts_state() -> None:
    hosts = Hosts(["n1", "n2", "n3"])
    pb = playbook(("first", RunCmd(), CmdParams(what="echo first")),
                  ("slow", RunCmd(), CmdParams(what="block")),
                  ("never", RunCmd(), CmdParams(what="echo never")))
    events = EventRecorder()
    ctrl_c_when(hosts.started, 3)
    t0 = time.monotonic()
    with hosts.pool() as pool:
        report = run_playbook(pb, None, hosts.nodes, pool, RunOptions(forks=8), events)
    assert time.monotonic() - t0 < 5
    assert report.interrupted and report.exit_code == 130
    assert report.aborted == "interrupted (Ctrl-C) during step 'slow'"
    assert not any("never" in line for _, line in hosts.ran)  # no new work after Ctrl-C
    assert all(c.closed for c in hosts.made)  # in-flight commands were ended
    for h in ("n1", "n2", "n3"):
        r = report.steps[1].results[h]
        assert r.status is Status.FAILED and r.message == INTERRUPTED  # not "internal error", not unreachable
        assert report.host_state[h] == ("in step 'slow' when interrupted (may be partly done); "
                                        "last completed step 'first'")
    assert EventKind.RUN_INTERRUPTED in events.kinds()


def test_ctrl_c_in_the_callers_thread_on_one_host_is_no_internal_error() -> None:
    # one host runs in the caller's own thread: the interrupt lands inside the command itself
    hosts = Hosts(["n1"])
    pb = playbook(("slow", RunCmd(), CmdParams(what="block")), ("never", RunCmd(), CmdParams(what="echo never")))
    ctrl_c_when(hosts.started, 1)
    with hosts.pool() as pool:
        report = run_playbook(pb, None, hosts.nodes, pool, RunOptions())
    assert report.exit_code == 130
    assert report.steps[0].results["n1"].message == INTERRUPTED
    assert "internal error" not in str(report.steps[0].results["n1"])
    assert not any("never" in line for _, line in hosts.ran)


class BlockParams(procedure.Params):
    pass


class AgentProcedure:
    """Starts an 'agent' on every host, registers its cleanup, then waits on them (blocks)."""

    name = "agents"
    Params = BlockParams

    def run(self, params: BlockParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        ctx.fan_out(lambda h: ctx.run(h, Shell.sh("start agent")))
        ctx.on_interrupt(lambda: ctx.fan_out(lambda h: ctx.run(h, Shell.sh("stop agent")), timeout=10))
        try:
            ctx.fan_out(lambda h: ctx.run(h, Shell.sh("block")))
        except Exception:  # noqa: BLE001 - must not swallow the interrupt
            return {h: StepResult(Status.FAILED, message="swallowed") for h in ctx.hosts}
        return {h: StepResult(Status.OK, "done") for h in ctx.hosts}


def test_ctrl_c_in_a_procedure_runs_its_cleanup_on_fresh_connections() -> None:
    hosts = Hosts(["n1", "n2"])
    pb = playbook(("agents", AgentProcedure(), BlockParams()), ("never", RunCmd(), CmdParams(what="echo never")))
    ctrl_c_when(hosts.started, 2)
    with hosts.pool() as pool:
        report = run_playbook(pb, None, hosts.nodes, pool, RunOptions(forks=4))
        with pytest.raises(Interrupted):  # after the run, the pool starts nothing new
            pool.get("n1")
    assert report.exit_code == 130
    assert sorted(h for h, line in hosts.ran if line == "stop agent") == ["n1", "n2"]
    assert not any("never" in line for _, line in hosts.ran)
    assert {r.message for r in report.steps[0].results.values()} == {INTERRUPTED}
    assert len(hosts.made) == 4  # the cleanup connected afresh: the interrupted ones were closed


def test_cleanups_of_a_finished_procedure_do_not_run_on_a_later_interrupt() -> None:
    class Quick(AgentProcedure):
        def run(self, params: BlockParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
            ctx.on_interrupt(lambda: ctx.fan_out(lambda h: ctx.run(h, Shell.sh("stop agent"))))
            return {h: StepResult(Status.OK, "done") for h in ctx.hosts}

    hosts = Hosts(["n1"])
    pb = playbook(("quick", Quick(), BlockParams()), ("slow", RunCmd(), CmdParams(what="block")))
    ctrl_c_when(hosts.started, 1)
    with hosts.pool() as pool:
        report = run_playbook(pb, None, hosts.nodes, pool, RunOptions())
    assert report.exit_code == 130
    assert not any(line == "stop agent" for _, line in hosts.ran)
    assert report.host_state["n1"].endswith("last completed step 'quick'")


def test_interrupted_pool_refuses_new_commands_and_old_handles() -> None:
    hosts = Hosts(["n1"])
    pool = hosts.pool()
    conn = pool.get("n1")
    assert conn.run(Shell.sh("true")).ok
    pool.interrupt()
    with pytest.raises(Interrupted):
        conn.run(Shell.sh("true"))  # a handle from before the interrupt never runs again
    with pytest.raises(Interrupted):
        pool.get("n1")
    with pool.cleanup():
        assert pool.get("n1").run(Shell.sh("cleanup")).ok
        with pytest.raises(Interrupted):
            conn.run(Shell.sh("true"))
    with pytest.raises(Interrupted):
        pool.get("n1")


def test_fan_out_lets_an_interrupt_escape_and_keeps_failures_as_values() -> None:
    def fn(h: str) -> str:
        if h == "a":
            raise Interrupted()
        if h == "b":
            raise ValueError("bad")
        time.sleep(5)
        return h

    t0 = time.monotonic()
    with pytest.raises(Interrupted):
        fan_out(["a", "b", "c"], fn, 4)
    assert time.monotonic() - t0 < 2  # the waiting host was abandoned, not waited for
    got = fan_out(["b"], fn, 4)
    assert isinstance(got["b"].error, ValueError)


def test_logs_follow_exits_130_on_ctrl_c_even_when_a_stream_failed() -> None:
    from glm5cluster.cli.logs_cmd import Target, _follow
    from glm5cluster.errors import TransportError
    from glm5cluster.runtime import UnitRuntime

    started = threading.Semaphore(0)

    class Streaming(FakeConnection):
        def stream(self, cmd: Shell, on_line: Any, stop: threading.Event) -> int | None:
            if self.host == "n2":
                raise TransportError("n2: connection lost while streaming")
            on_line("2026-11-30T10:00:00Z hello")
            started.release()
            stop.wait(10)
            return None

    nodes = [node("n1"), node("n2")]
    pool = ConnectionPool(nodes, factory=lambda n: Streaming(n.name))
    lines: list[str] = []
    ctrl_c_when(started, 1)
    rt = UnitRuntime("/opt/venv")
    code = _follow(pool, [Target("n1", 0, 0, "u", rt), Target("n2", 0, 1, "u", rt)], 10, None, lines.append)
    assert code == 130
    assert lines and "hello" in lines[0]


def test_ctrl_c_in_a_one_host_fan_out_is_no_empty_failure() -> None:
    # one replica runs in the caller's thread: Ctrl-C there once became "readiness watch failed: "
    def fn(h: str) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fan_out(["replica-0"], fn, 8)


def test_weights_interrupt_cleanup_stops_the_agent_and_its_children(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from glm5cluster.connect.local import LocalConnection
    from glm5cluster.engine.procedures import weights as WP

    state = tmp_path / "w" / ".glm5cluster"
    state.mkdir(parents=True)
    code = "import subprocess,time; subprocess.Popen(['sleep','60']); time.sleep(60)"
    agent = subprocess.Popen(["setsid", sys.executable, "-c", code, "glm5-weights-agent"])
    (state / "agent.pid").write_text(f"{agent.pid}\n")
    time.sleep(0.5)
    children = subprocess.run(["pgrep", "-g", str(agent.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 2  # the agent and its child, one process group
    nodes = [node("n1")]
    pool = ConnectionPool(nodes, factory=lambda n: LocalConnection(n.name))
    ctx = ClusterContext(("n1",), {"n1": nodes[0]}, None, None, False, None, "weights", 0, 4, pool,
                         lambda e: None, None)
    stage: Any = WP._Stage.__new__(WP._Stage)
    stage.ctx, stage.wdir = ctx, str(tmp_path / "w")
    stage._abort(["n1"], [], [])
    agent.wait(5)
    deadline = time.monotonic() + 5  # (an orphan is reaped by init a moment later)
    while subprocess.run(["pgrep", "-g", str(agent.pid)], capture_output=True).returncode != 1:
        assert time.monotonic() < deadline, "a process of the agent's group survived"
        time.sleep(0.1)
    assert not (state / "agent.pid").exists()
    # a stale pid file naming another process: that process is left alone
    other = subprocess.Popen(["sleep", "30"])
    (state / "agent.pid").write_text(f"{other.pid}\n")
    stage._abort(["n1"], [], [])
    assert other.poll() is None
    other.kill()
    assert os.path.exists(tmp_path)


def test_logs_follow_ctrl_c_grace_is_shared_not_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # streams that do not end when asked (a silent host) must not hold the terminal for the
    # grace period once per host: 64 hosts x 5 s was minutes after Ctrl-C
    from glm5cluster.cli import logs_cmd
    from glm5cluster.runtime import UnitRuntime

    monkeypatch.setattr(logs_cmd, "FOLLOW_STOP_GRACE", 0.5, raising=False)
    started = threading.Semaphore(0)

    class Stuck(FakeConnection):
        def stream(self, cmd: Shell, on_line: Any, stop: threading.Event) -> int | None:
            started.release()
            time.sleep(30)  # ignores stop, as a host that stopped answering would
            return None

    hosts = [f"n{i}" for i in range(8)]
    pool = ConnectionPool([node(h) for h in hosts], factory=lambda n: Stuck(n.name))
    ctrl_c_when(started, len(hosts))
    rt = UnitRuntime("/opt/venv")
    t0 = time.monotonic()
    code = logs_cmd._follow(pool, [logs_cmd.Target(h, 0, i, "u", rt) for i, h in enumerate(hosts)],
                            10, None, lambda _line: None)
    assert code == 130
    assert time.monotonic() - t0 < 3  # one shared 0.5 s grace, not 8 x 0.5 s
