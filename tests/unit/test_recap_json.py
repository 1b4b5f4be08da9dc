"""`run`/`up`/`down --format json`: one object on stdout (per host: counts, each step's result,
its final state), progress and the text recap on stderr. Driven through the click command with
the hosts' commands run on this machine (host b's change fails, host c is unreachable)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from glm5cluster.cli import run_cmd
from glm5cluster.cli.recap_json import host_state
from glm5cluster.commands import CommandResult, Shell
from glm5cluster.connect.local import LocalConnection
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.report import RunReport, Status, StepReport, StepResult
from glm5cluster.errors import TransportError

INV = """\
version: 1
cluster: {name: j, gpu: {kind: H200, count: 8}}
hosts:
- {name: a, address: 10.0.0.1}
- {name: b, address: 10.0.0.2}
- {name: c, address: 10.0.0.3}
model: {repo: zai-org/GLM-5-FP8, weights_dir: /srv/models/GLM-5-FP8}
"""
PLAYBOOK = """\
name: jsontest
steps:
  - name: look
    task: command
    params: {cmd: "uname -n"}
  - name: touch
    task: command
    params: {cmd: "touch {marker}", changes: true}
  - name: after
    task: command
    params: {cmd: "true"}
"""


class Host(LocalConnection):
    """This machine, as host ``name``: ``touch`` fails on b, every command fails to connect on c."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
        self.ran: list[str] = []

    def run(self, cmd: Shell) -> CommandResult:
        self.ran.append(cmd.command_line())
        if self.name == "c" and self.down:
            raise TransportError("c: connection refused", hint="is sshd running?")
        if self.name == "b" and "touch" in cmd.command_line():
            return CommandResult("touch", 1, "", "touch: cannot touch: Read-only file system")
        return super().run(cmd)

    down = True


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Host]:
    conns = {h: Host(h) for h in "abc"}

    @contextlib.contextmanager
    def connected(loaded: Any, display: Any, log: Any, *args: Any, **kw: Any) -> Iterator[ConnectionPool]:
        try:
            with ConnectionPool(loaded.nodes, factory=lambda node: conns[node.name]) as pool:
                yield pool
        finally:
            display.close()
            log.close()

    monkeypatch.setattr(run_cmd, "connected", connected)
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path / "home"))
    return conns


def _run(tmp_path: Path, *extra: str) -> Any:
    (tmp_path / "inv.yaml").write_text(INV)
    (tmp_path / "pb.yaml").write_text(PLAYBOOK.replace("{marker}", str(tmp_path / "marker")))
    return CliRunner().invoke(run_cmd.command, [str(tmp_path / "inv.yaml"), str(tmp_path / "pb.yaml"),
                                                                "--yes", "--format", "json", *extra])


def test_run_json_is_one_object_on_stdout_with_each_hosts_final_state(tmp_path: Path,
                                                                      hosts: dict[str, Host]) -> None:
    res = _run(tmp_path)
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)  # the whole of stdout is the object
    assert doc["command"] == "run" and doc["playbook"] == "jsontest" and doc["exit_code"] == 1
    assert doc["applied"] is True and doc["check"] is False and doc["log_dir"]
    a, b, c = (doc["hosts"][h] for h in "abc")
    assert a["state"] == "changed" and a["counts"]["changed"] == 1 and a["counts"]["failed"] == 0
    assert a["where"] == "last completed step 'after'"
    assert b["state"] == "failed" and b["failed_step"] == "touch" and b["where"] == "last completed step 'look'"
    assert c["state"] == "unreachable" and c["message"] == "c: connection refused" and c["hint"] == "is sshd running?"
    touch = next(s for s in doc["steps"] if s["name"] == "touch")
    assert touch["results"]["a"]["status"] == "changed"
    assert touch["results"]["b"]["status"] == "failed" and touch["results"]["b"]["exit_code"] == 1
    # progress and the text recap went to stderr
    assert "RECAP" in res.stderr and "RECAP" not in res.stdout


def test_run_json_check_says_what_would_change(tmp_path: Path, hosts: dict[str, Host]) -> None:
    hosts["c"].down = False
    res = _run(tmp_path, "--check", "--limit", "a,c")
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["check"] is True, res.stderr
    assert {h: d["state"] for h, d in doc["hosts"].items()} == {"a": "would-change", "c": "would-change"}
    assert not (tmp_path / "marker").exists() and not any("touch" in c for c in hosts["a"].ran)  # nothing changed


def _report(check: bool = False, applied: bool = True, **results: StepResult) -> RunReport:
    return RunReport("p", list(results), check=check, applied=applied,
                     steps=[StepReport(0, "s", "command", dict(results))])


def test_host_states() -> None:
    ok, ch = StepResult(Status.OK), StepResult(Status.CHANGED)
    assert host_state(_report(a=ok), "a")["state"] == "converged"
    assert host_state(_report(a=ch), "a")["state"] == "changed"
    assert host_state(_report(check=True, applied=False, a=ch), "a")["state"] == "would-change"
    stopped = _report(a=ok)
    stopped.stopped["a"] = "another host failed (max_fail)"
    assert host_state(stopped, "a")["state"] == "stopped"
    broke = _report(a=StepResult(Status.FAILED, message="boom"))
    broke.host_state["a"] = "in step 's' when interrupted"
    assert host_state(broke, "a")["where"] == "in step 's' when interrupted"


def test_up_json_says_where_to_send_requests() -> None:
    from glm5cluster.cli.up_cmd import serving_doc
    from glm5cluster.model.nodes import resolve_nodes
    from glm5cluster.topology import plan_topology
    from tests.unit.conftest import make_inventory

    inv = make_inventory(hosts=3, replicas={"count": 3, "router": {"host": "n2", "port": 8100}})
    doc = serving_doc(inv, plan_topology(inv, resolve_nodes(inv)))
    assert [r["node0"] for r in doc["replicas"]] == ["n0", "n1", "n2"]  # type: ignore[index]
    assert doc["router"] == "http://10.0.0.3:8100" and doc["model"]
