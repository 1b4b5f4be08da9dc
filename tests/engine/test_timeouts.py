"""Every remote command carries a timeout, and a host that stops answering is dropped and named."""

from __future__ import annotations

import ast
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from glm5cluster.commands import DEFAULT_TIMEOUT, CommandResult, Shell
from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.local import LocalConnection
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.events import null_sink
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.procedures import weights as WP
from glm5cluster.engine.report import Status
from glm5cluster.errors import TransportError
from tests.engine.fakes import node

PKG = Path(__file__).resolve().parents[2] / "glm5cluster"


def test_every_shell_has_a_timeout_none_meaning_the_default() -> None:
    assert Shell.sh("true").timeout == DEFAULT_TIMEOUT
    assert Shell.cmd("true", timeout=None).timeout == DEFAULT_TIMEOUT
    assert dataclasses.replace(Shell.sh("true", timeout=7), sudo=True).timeout == 7
    with pytest.raises(ValueError):
        Shell.sh("true", timeout=0)
    # the inventory's ssh.command_timeout replaces the default only, never a sized limit
    assert Shell.sh("true").effective_timeout(42) == 42
    assert Shell.sh("true", timeout=3600).effective_timeout(42) == 3600
    assert Shell.sh("true").effective_timeout(None) == DEFAULT_TIMEOUT


def test_no_task_procedure_or_fact_asks_for_no_limit() -> None:
    # ``timeout=None`` reads as "no limit" but is the default: say the size instead
    bad = []
    for path in [*PKG.glob("tasks/**/*.py"), *PKG.glob("engine/**/*.py"), *PKG.glob("facts/**/*.py"),
                 *PKG.glob("cli/*.py"), *PKG.glob("bench/*.py")]:
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.Call) and "Shell" in ast.unparse(n.func):
                for kw in n.keywords:
                    if kw.arg == "timeout" and isinstance(kw.value, ast.Constant) and kw.value.value is None:
                        bad.append(f"{path.relative_to(PKG)}:{n.lineno}")
    assert bad == []


def test_a_command_past_its_timeout_is_ended() -> None:
    t0 = time.monotonic()
    res = LocalConnection("h").run(Shell.sh("sleep 10", timeout=0.5))
    assert res.exit_code == 124 and "timed out after 0.5s" in res.stderr and time.monotonic() - t0 < 5


def test_weights_poll_drops_and_names_a_host_that_stops_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(WP, "SILENT_POLLS", 0.3)

    def respond(host: str, cmd: Shell) -> CommandResult | None:
        if cmd.description == "weights progress":
            assert cmd.timeout is not None and cmd.timeout <= 60
            if host == "n2":
                raise TransportError("n2: cannot connect to root@n2:22: timed out")
            return CommandResult("", 0, '{"phase": "done"}\n')
        return CommandResult("", 0, "started\n")

    nodes = [node("n1"), node("n2")]
    pool = ConnectionPool(nodes, factory=lambda n: FakeConnection(n.name, responder=lambda c, h=n.name: respond(h, c)))
    ctx = ClusterContext(("n1", "n2"), {n.name: n for n in nodes}, None, None, False, None, "weights", 0, 4,
                         pool, null_sink, None)
    stage: Any = WP._Stage.__new__(WP._Stage)
    stage.p, stage.ctx, stage.wdir, stage.token, stage.results = WP.StageParams(poll_interval=0.05), ctx, "/w", None, {}

    class Src:
        endpoint = None

    stage.src = Src()
    t0 = time.monotonic()
    stage._start_and_wait({"n1": {"kind": "fetch"}, "n2": {"kind": "fetch"}})
    assert time.monotonic() - t0 < 10  # not polled forever
    r = stage.results["n2"]
    assert r.status is Status.UNREACHABLE and "n2 stopped answering during weights staging" in r.message
    assert "timed out" in r.message and "n1" not in stage.results  # n1 finished: its result comes later
