from __future__ import annotations

import io
from typing import Any

import pytest

from glm5cluster.cli.display import Display
from glm5cluster.engine.events import Event, EventKind
from glm5cluster.engine.report import RunReport, Status, StepReport, StepResult


def report() -> RunReport:
    r = RunReport("converge", ["node-1", "node-2", "node-3"], log_dir="/tmp/runs/x")
    s1 = StepReport(0, "env file", "file")
    s1.results = {"node-1": StepResult(Status.OK, "present", 0.1),
                  "node-2": StepResult(Status.CHANGED, "update /etc/x", 0.2),
                  "node-3": StepResult(Status.UNREACHABLE, message="node-3: connection refused", duration=3.0,
                                       hint="check that the host is up")}
    s2 = StepReport(1, "unit", "systemd_unit")
    s2.results = {"node-1": StepResult(Status.FAILED, "start unit", 0.5, message="systemctl start exited 1",
                                       exit_code=1, tail="Job failed\nsee journalctl"),
                  "node-2": StepResult(Status.OK, "running", 0.1)}
    r.steps = [s1, s2]
    return r


def test_recap_names_host_step_exit_code_tail_and_log() -> None:
    out = io.StringIO()
    d = Display(out, live=False)
    rep = report()
    d.recap(rep, rep.log_dir)
    text = out.getvalue()
    assert "node-2  ok          ok=1  changed=1  failed=0  skipped=0  unreachable=0" in text
    assert "node-3  UNREACHABLE" in text
    assert "FAILED: node-1: step 'unit': exit 1 systemctl start exited 1" in text
    assert "    | see journalctl" in text
    assert "log: /tmp/runs/x/node-1.log" in text and "logs: /tmp/runs/x" in text
    assert "hint: check that the host is up" in text
    assert rep.exit_code == 1 and rep.failed_hosts() == ["node-1", "node-3"]


def test_plain_events_and_live_mode() -> None:
    for live in (False, True):
        out = io.StringIO()
        d = Display(out, live=live)
        d(Event(EventKind.RUN_STARTED, hosts=("n1", "n2")))
        d(Event(EventKind.PHASE, message="apply", hosts=("n1", "n2")))
        d(Event(EventKind.STEP_STARTED, 0, "dir", hosts=("n1", "n2")))
        d(Event(EventKind.HOST_STARTED, 0, "dir", "n1"))
        d(Event(EventKind.HOST_FINISHED, 0, "dir", "n1", result=StepResult(Status.CHANGED, "create /x", 0.1)))
        d(Event(EventKind.HOST_FINISHED, 0, "dir", "n2", result=StepResult(Status.OK, "present", 0.1)))
        d(Event(EventKind.STEP_FINISHED, 0, "dir", hosts=("n1", "n2")))
        d(Event(EventKind.RUN_FINISHED))
        d.close()
        text = out.getvalue()
        assert "n1: changed: create /x" in text and "[1] dir: 1 changed, 1 ok" in text


def test_check_recap_and_step_counts_say_would_change() -> None:
    out = io.StringIO()
    d = Display(out, live=False)
    rep = report()
    rep.check = True
    d(Event(EventKind.PHASE, message="plan", hosts=("node-2",)))
    d(Event(EventKind.STEP_STARTED, 0, "env file"))
    d(Event(EventKind.HOST_FINISHED, 0, "env file", "node-2", result=StepResult(Status.CHANGED, "update /etc/x")))
    d(Event(EventKind.STEP_FINISHED, 0, "env file"))
    d.recap(rep)
    text = out.getvalue()
    assert "[1] env file: 1 would change" in text
    assert "node-2  ok          ok=1  would-change=1  failed=0" in text and "changed=1" not in text


def test_recap_after_ctrl_c_names_the_state_of_every_host() -> None:
    from glm5cluster.engine.report import INTERRUPTED

    out = io.StringIO()
    rep = RunReport("up", ["node-1", "node-2"], aborted="interrupted (Ctrl-C) during step 'weights'",
                    interrupted=True, host_state={"node-1": "in step 'weights' when interrupted",
                                                  "node-2": "stopped earlier; no step completed"})
    s = StepReport(0, "weights", "weights.stage")
    s.results = {"node-1": StepResult(Status.FAILED, message=INTERRUPTED)}
    rep.steps = [s]
    Display(out, live=False).recap(rep)
    text = out.getvalue()
    assert "node-1  INTERRUPTED" in text
    assert "state of each host after the interrupt:" in text
    assert "node-2  stopped earlier; no step completed" in text
    assert rep.exit_code == 130


def test_recap_names_unreachable_hosts_before_other_failures() -> None:
    out = io.StringIO()
    rep = report()
    Display(out, live=False).recap(rep, rep.log_dir)
    text = out.getvalue()
    assert text.index("UNREACHABLE: node-3") < text.index("FAILED: node-1")


def test_confirm_prompt_is_not_drawn_over_and_ctrl_c_there_is_an_interrupt(monkeypatch: Any) -> None:
    import click

    from glm5cluster.cli.confirm import TerminalConfirm

    d = Display(io.StringIO(), live=True)
    d(Event(EventKind.RUN_STARTED, message="up", hosts=("node-1",)))
    assert d._live is not None
    seen: dict[str, Any] = {}

    def confirm(question: str, default: bool) -> bool:
        seen["live"], seen["default"] = d._live, default  # click shows [y/N] for default=False
        return True

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr(click, "confirm", confirm)
    assert TerminalConfirm(d)(report())
    assert seen == {"live": None, "default": False}  # the live table stopped before the prompt
    d(Event(EventKind.PHASE, message="apply", hosts=("node-1",)))
    assert d._live is not None  # and comes back for the apply pass
    d.close()

    def ctrl_c(question: str, default: bool) -> bool:
        raise click.Abort

    monkeypatch.setattr(click, "confirm", ctrl_c)
    with pytest.raises(KeyboardInterrupt):  # exit 130 "interrupted", not "aborted" with 1
        TerminalConfirm(d)(report())


@pytest.mark.parametrize("cmd", ["up", "down", "run", "exec", "logs"])
def test_forks_and_break_lock_have_help(cmd: str, capsys: Any) -> None:
    from glm5cluster.cli.main import main

    assert main([cmd, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--forks" in text and "Hosts worked on in parallel" in text
    if cmd in ("up", "down", "run"):
        assert "--break-lock" in text and "only when that run is gone" in text
