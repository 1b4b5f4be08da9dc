from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from glm5cluster.commands import Shell
from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.events import EventKind, EventRecorder
from glm5cluster.engine.playbook import Playbook, Step, load_playbook
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.engine.runlog import RunLog
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.errors import InputError, TransportError
from glm5cluster.tasks.base import HostContext, Params
from tests.engine.fakes import TASKS, local_fake, node


def make_playbook(*steps: tuple[str, str, dict[str, Any], str]) -> Playbook:
    return Playbook("t", "t.yaml", tuple(
        Step(i, name, task, TASKS[task], TASKS[task].Params(**params), hosts)
        for i, (name, task, params, hosts) in enumerate(steps)))


CONVERGE = make_playbook(("a", "set_value", {"key": "a", "value": "1"}, "all"),
                         ("b", "set_value", {"key": "b", "value": "2"}, "all"))


class Env:
    def __init__(self, tmp: Path, hosts: list[str], groups: dict[str, tuple[str, ...]] | None = None,
                 labels: dict[str, dict[str, str]] | None = None) -> None:
        self.root = tmp / "state"
        self.nodes = [node(h, (groups or {}).get(h, ()), {**(labels or {}).get(h, {}), "state_root": str(self.root)})
                      for h in hosts]
        self.conns: dict[str, FakeConnection] = {h: local_fake(h) for h in hosts}
        self.events = EventRecorder()
        self.logs = tmp / "runs"

    def pool(self) -> ConnectionPool:
        return ConnectionPool(self.nodes, factory=lambda n: self.conns[n.name])

    def run(self, pb: Playbook = CONVERGE, topology: Any = None, **opts: Any) -> Any:
        confirm = opts.pop("confirm", None)
        log = RunLog(pb.name, base=str(self.logs))

        def ctx(n: Any, check: bool) -> HostContext:
            return HostContext(node=n, check=check)

        with self.pool() as pool:
            report = run_playbook(pb, None, self.nodes, pool, RunOptions(**opts), self.events,
                                  log, confirm=confirm, context=ctx, topology=topology)
        log.close()
        return report


def statuses(report: Any, step: int) -> dict[str, Status]:
    return {h: r.status for h, r in report.steps[step].results.items()}


def test_converge_then_no_changes(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2", "n3"])
    first = env.run()
    assert first.exit_code == 0 and first.changes == 6
    assert (env.root / "n2" / "b").read_text() == "2"
    # first run: one prefetch, apply a, re-read b (a changed the host), apply b
    assert len(env.conns["n1"].ran) == 4
    second = env.run()
    assert second.changes == 0 and second.exit_code == 0
    recap = second.recap("n1")
    assert recap.counts[Status.OK] == 2 and recap.counts[Status.CHANGED] == 0
    # a converged host costs one round trip for the whole playbook
    assert len(env.conns["n1"].ran) == 5


def test_check_mode_changes_nothing(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2"])
    report = env.run(check=True)
    assert report.check and report.changes == 4
    assert not env.root.exists()
    r = report.steps[0].results["n1"]
    assert r.summary == "set a to 1" and r.diff == "-None\n+1"


def test_check_after_manual_change_reports_exactly_that(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2"])
    env.run()
    (env.root / "n2" / "b").write_text("tampered")
    report = env.run(check=True)
    changed = [(s.name, h) for s in report.steps for h, r in s.results.items() if r.status is Status.CHANGED]
    assert changed == [("b", "n2")]
    assert (env.root / "n2" / "b").read_text() == "tampered"


def test_unreachable_host_is_a_value_others_complete(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2", "n3"])
    env.conns["n2"].fail_with(TransportError("n2: cannot connect: connection refused"))
    report = env.run()
    assert statuses(report, 0) == {"n1": Status.CHANGED, "n2": Status.UNREACHABLE, "n3": Status.CHANGED}
    assert "n2" not in report.steps[1].results  # a failed host stops its own later steps
    assert set(report.steps[1].results) == {"n1", "n3"}
    assert report.exit_code == 1 and report.failed_hosts() == ["n2"]
    assert report.recap("n2").unreachable


def test_failed_command_reports_exit_code_and_tail(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2"], labels={"n1": {"refuse": "yes"}})
    pb = make_playbook(("bad", "run_failing", {"exit_code": 7}, "all"),
                       ("after", "set_value", {"key": "x", "value": "1"}, "all"))
    report = env.run(pb)
    n1, n2 = report.steps[0].results["n1"], report.steps[0].results["n2"]
    assert n1.status is Status.FAILED and n1.message == "host refuses" and n1.hint == "fix it"
    assert n2.status is Status.FAILED and n2.exit_code == 7 and "boom" in n2.tail
    assert report.steps[1].results == {}


def test_max_fail_aborts_the_run(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2", "n3", "n4"])
    for h in ("n1", "n2"):
        env.conns[h].fail_with(TransportError(f"{h} down"))
    report = env.run(max_fail=1)
    assert report.aborted and "more than --max-fail 1" in report.aborted
    assert len(report.steps) == 1 and report.exit_code == 1
    ok = env.run(max_fail=2)
    assert ok.aborted is None and len(ok.steps) == 2


class _Rank:
    def __init__(self, name: str, head: bool) -> None:
        self.node = node(name)
        self.is_head = head


class _Replica:
    def __init__(self, index: int, names: list[str]) -> None:
        self.index = index
        self.ranks = tuple(_Rank(n, i == 0) for i, n in enumerate(names))


class _Topology:
    def __init__(self, *replicas: list[str]) -> None:
        self.replicas = tuple(_Replica(i, r) for i, r in enumerate(replicas))

    def replica_of(self, name: str) -> Any:
        for rep in self.replicas:
            for rank in rep.ranks:
                if rank.node.name == name:
                    return rep, rank
        return None


def test_head_failure_stops_its_replica(tmp_path: Path) -> None:
    env = Env(tmp_path, ["a1", "a2", "b1", "b2"])
    env.conns["a1"].fail_with(TransportError("a1 down"))
    report = env.run(topology=_Topology(["a1", "a2"], ["b1", "b2"]))
    assert set(report.steps[1].results) == {"b1", "b2"}
    assert "head a1 of replica 0" in report.stopped["a2"]
    assert report.recap("a2").stopped


def test_worker_failure_does_not_stop_head(tmp_path: Path) -> None:
    env = Env(tmp_path, ["a1", "a2"])
    env.conns["a2"].fail_with(TransportError("a2 down"))
    report = env.run(topology=_Topology(["a1", "a2"]))
    assert set(report.steps[1].results) == {"a1"}


def test_head_and_workers_selectors(tmp_path: Path) -> None:
    env = Env(tmp_path, ["a1", "a2", "b1"])
    pb = make_playbook(("h", "set_value", {"key": "h", "value": "1"}, "head"),
                       ("w", "set_value", {"key": "w", "value": "1"}, "workers"))
    report = env.run(pb, topology=_Topology(["a1", "a2"], ["b1"]))
    assert set(report.steps[0].results) == {"a1", "b1"} and set(report.steps[1].results) == {"a2"}
    with pytest.raises(InputError, match="forms no topology"):
        env.run(pb, topology=None)


def test_limit_and_selectors(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2", "n3"], groups={"n3": ("gpu",)}, labels={"n2": {"rack": "r1"}})
    assert set(env.run(limit=("n1,gpu",)).steps[0].results) == {"n1", "n3"}
    pb = make_playbook(("l", "set_value", {"key": "l", "value": "1"}, "label:rack=r1"),
                       ("g", "set_value", {"key": "g", "value": "1"}, "group:gpu"),
                       ("h", "set_value", {"key": "h", "value": "1"}, "host:n1"))
    report = env.run(pb)
    assert [set(s.results) for s in report.steps] == [{"n2"}, {"n3"}, {"n1"}]
    with pytest.raises(InputError, match="names no host or group"):
        env.run(limit=("nope",))


def test_confirm_flow(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1"])
    asked: list[int] = []
    refused = env.run(confirm=lambda plan: asked.append(plan.changes) or False)
    assert asked == [2] and refused.aborted and not env.root.exists() and refused.exit_code == 1
    applied = env.run(confirm=lambda plan: True)
    assert applied.applied and applied.changes == 2 and (env.root / "n1" / "a").exists()
    asked.clear()
    converged = env.run(confirm=lambda plan: asked.append(1) or True)
    assert asked == [] and converged.changes == 0 and converged.exit_code == 0


def test_events_and_recap(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2"])
    env.run()
    kinds = env.events.kinds()
    assert kinds[0] is EventKind.RUN_STARTED and kinds[-1] is EventKind.RUN_FINISHED
    finished = [(e.step, e.host) for e in env.events.events if e.kind is EventKind.HOST_FINISHED]
    assert sorted(finished) == [("a", "n1"), ("a", "n2"), ("b", "n1"), ("b", "n2")]


def test_secrets_masked_in_logs(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1"])
    pb = make_playbook(("s", "use_secret", {"token": "hf_SUPERSECRET"}, "all"))
    report = env.run(pb)
    assert report.exit_code == 0 and report.log_dir
    log = Path(report.log_dir) / "n1.log"
    text = log.read_text()
    assert "hf_SUPERSECRET" not in text and "***" in text
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(report.log_dir).st_mode) == 0o700
    # the secret travelled on stdin, never in the command line
    assert "hf_SUPERSECRET" not in env.conns["n1"].ran[0].command_line()


def test_loaded_playbook_runs(tmp_path: Path) -> None:
    pb_file = tmp_path / "pb.yaml"
    pb_file.write_text("name: demo\nsteps:\n  - name: one\n    task: set_value\n"
                       "    params: {key: k, value: v}\n")
    env = Env(tmp_path, ["n1"])
    assert env.run(load_playbook(pb_file, TASKS)).changes == 1


class _ProcParams(Params):
    skip_host: str = ""


class _Proc:
    name = "echo_all"
    Params = _ProcParams

    def run(self, params: _ProcParams, ctx: ClusterContext) -> dict[str, StepResult]:
        got = ctx.fan_out(lambda h: ctx.run(h, Shell.cmd("echo", h)))
        out = {}
        for h, r in got.items():
            if h == params.skip_host:
                continue
            if r.error is not None:
                out[h] = StepResult(Status.UNREACHABLE, message=str(r.error))
            else:
                ctx.progress(h, "echoed")
                status = Status.CHANGED if ctx.check else Status.OK
                out[h] = StepResult(status, r.value.stdout.strip() if r.value else "")
        return out


def test_procedure_step_gets_every_host(tmp_path: Path) -> None:
    env = Env(tmp_path, ["n1", "n2", "n3"])
    env.conns["n3"].fail_with(TransportError("n3 down"))
    proc = _Proc()
    pb = Playbook("p", "p.yaml", (
        Step(0, "cluster", "echo_all", proc, _ProcParams(skip_host="n2"), "all"),
        Step(1, "after", "set_value", TASKS["set_value"], TASKS["set_value"].Params(key="k", value="v"), "all"),
    ))
    report = env.run(pb)
    res = report.steps[0].results
    assert res["n1"].status is Status.OK and res["n1"].summary == "n1"
    assert res["n2"].status is Status.FAILED and "gave no result" in res["n2"].message
    assert res["n3"].status is Status.UNREACHABLE
    assert set(report.steps[1].results) == {"n1"}
    assert any(e.kind is EventKind.HOST_PROGRESS and e.host == "n1" for e in env.events.events)
    check = env.run(pb, check=True)
    assert check.steps[0].results["n1"].status is Status.CHANGED


def test_blank_secret_values_are_never_masked_and_lines_of_a_secret_are(tmp_path: Path) -> None:
    log = RunLog("t", base=str(tmp_path), secrets=["", "  ", "\n"])
    log.add_secret("\n")  # stdin of a token-less request: an empty token, then a newline
    log.add_secret("hf_TOKENVALUE\n{\"repo\": \"x\"}")
    assert log.mask("line one\nline two\n") == "line one\nline two\n"
    assert log.mask("Authorization: Bearer hf_TOKENVALUE") == "Authorization: Bearer ***"
    log.close()
