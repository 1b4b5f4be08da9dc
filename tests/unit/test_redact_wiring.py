"""Every place that prints a node's log or a failure tail masks secrets (the one function in
glm5cluster/redact.py): `logs`, `status`, the run display and recap, exec output, the run logs."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from glm5cluster import redact
from glm5cluster.cli.display import Display, print_exec
from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.logs_cmd import Target, render
from glm5cluster.commands import CommandResult, Shell
from glm5cluster.engine.procedures.status import parse_rank
from glm5cluster.engine.report import RunReport, Status, StepReport, StepResult
from glm5cluster.engine.runlog import RunLog
from glm5cluster.facts.log_lines import LogLine
from glm5cluster.facts.sections import section_script
from glm5cluster.runtime import UnitRuntime

KEY = "sk-wiring-0123456789"
# what SGLang 0.5.23 logs at start (sglang/srt/entrypoints/engine.py:311, a dict of resolved args)
LINE = f"server_args={{'model_path': 'zai-org/GLM-5', 'api_key': '{KEY}', 'admin_api_key': None}}"
INV = """\
version: 1
cluster: {name: lab, gpu: {kind: H200, count: 8}}
hosts:
- {name: node-1, address: 10.0.0.11}
- {name: node-2, address: 10.0.0.12}
model: {repo: zai-org/GLM-5, weights_dir: /srv/models/GLM-5}
serving: {secrets: {api_key_env: GLM5_WIRING_KEY}}
"""


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


def test_logs_lines_are_masked() -> None:
    got = render(Target("node-1", 0, 0, "glm5-lab-r0", UnitRuntime("/v")), LogLine(None, LINE), 10)
    assert KEY not in got and "'api_key': '***'" in got


def test_status_log_tail_is_masked(tmp_path: Path) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text(INV)
    checked = load_and_check(f)
    script = section_script([("state-unit", "printf 'LoadState=loaded\\nActiveState=active\\n'"),
                             ("log-unit", f"printf '%s\\n' \"{LINE}\""), ("state-container", "true")])
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    r = parse_rank(CommandResult("status", 0, out.stdout, out.stderr), checked.loaded.inventory,
                   checked.topology.replicas[0], is_head=False)
    assert r.log and KEY not in "\n".join(r.log) and "'api_key': '***'" in r.log[0]


def test_recap_tail_and_exec_output_are_masked() -> None:
    buf = io.StringIO()
    d = Display(out=buf, live=False)
    report = RunReport("up", ["node-1"])
    report.steps.append(StepReport(1, "readiness", "readiness", {
        "node-1": StepResult(Status.FAILED, message=f"rank 0 died; --api-key {KEY}", tail=LINE)}))
    d.recap(report)
    print_exec(buf, "node-1", f"HF_TOKEN={KEY}\n")
    text = buf.getvalue()
    assert KEY not in text and "'api_key': '***'" in text and "--api-key ***" in text


def test_run_log_masks_fields(tmp_path: Path) -> None:
    log = RunLog("up", base=str(tmp_path))
    log.command("node-1", Shell.sh("journalctl -u x"), CommandResult("journalctl -u x", 0, LINE + "\n", ""))
    log.close()
    text = Path(log.path_of("node-1")).read_text()
    assert KEY not in text and "'api_key': '***'" in text


def test_loading_an_inventory_remembers_its_secret_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLM5_WIRING_KEY", KEY)
    f = tmp_path / "inv.yaml"
    f.write_text(INV)
    load_and_check(f)
    assert redact.mask(f"curl: 401 with {KEY}") == "curl: 401 with ***"
