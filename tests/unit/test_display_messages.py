"""Step messages are shown whole: a long cause, address or path is never cut in the display."""

from __future__ import annotations

import io

from glm5cluster.cli.display import Display
from glm5cluster.engine.events import Event, EventKind
from glm5cluster.engine.report import RunReport, Status, StepReport, StepResult

LONG = ("restart the whole group: rank 0 on node-1: not launched; glm5-up2-sw-r0 on node-1 (running) was "
        "started by the docker runtime; the inventory says venv; weights at /srv/models/GLM-5/very/long/path "
        "missing model-00007-of-00042.safetensors")


def test_host_lines_and_recap_keep_the_whole_message() -> None:
    out = io.StringIO()
    d = Display(out=out, live=False, verbose=True)
    d(Event(EventKind.HOST_FINISHED, 0, "launch", "node-1", result=StepResult(Status.CHANGED, LONG)))
    report = RunReport("up", ["node-1"])
    report.steps.append(StepReport(1, "launch", "launch", {"node-1": StepResult(Status.FAILED, message=LONG)}))
    d.recap(report)
    text = out.getvalue()
    assert text.count("missing model-00007-of-00042.safetensors") == 2, text
    assert "..." not in text
