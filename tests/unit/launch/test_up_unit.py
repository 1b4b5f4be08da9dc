"""Pure parts of `glm5cluster up` and what it relies on: ``ClusterContext.fan_out`` over no hosts,
the ``serving.memlock_unlimited`` knob in the unit and the docker argv, and the verify pass an
interactive `up` runs after a plan with no changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.up_cmd import merge_verify, verify_only
from glm5cluster.engine.playbook import load_playbook
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.report import RunReport, Status, StepReport, StepResult
from glm5cluster.runtime.rank import rank_command, rank_unit

ROOT = Path(__file__).resolve().parents[3]


def _ctx(hosts: tuple[str, ...]) -> ClusterContext:
    return ClusterContext(hosts, {}, None, None, False, None, "s", 0, 4, None, lambda e: None, None)  # type: ignore[arg-type]


def test_fan_out_over_no_hosts_runs_nothing() -> None:
    ctx = _ctx(("a", "b"))
    seen: list[str] = []
    assert dict(ctx.fan_out(seen.append, [])) == {}
    assert seen == []
    assert sorted(ctx.fan_out(lambda h: h.upper())) == ["a", "b"]  # None: every host of the step


def _with_memlock(name: str, value: bool) -> tuple[Any, Any]:
    checked = load_and_check(ROOT / "inventory" / name)
    inv = checked.loaded.inventory
    inv = inv.model_copy(update={"serving": inv.serving.model_copy(update={"memlock_unlimited": value})})
    return inv, checked.topology


def test_memlock_knob_in_the_unit() -> None:
    for value in (True, False):
        inv, topo = _with_memlock("h200-bf16.yaml", value)
        rep = topo.replicas[0]
        unit = rank_unit(inv, topo, rep, rep.ranks[1])
        assert ("LimitMEMLOCK=infinity" in unit) is value
        assert "\nLimitSTACK=67108864\n" in unit and "\n\n\n" not in unit


def test_memlock_knob_in_the_docker_argv() -> None:
    for value in (True, False):
        inv, topo = _with_memlock("h100-bf16.yaml", value)
        rep = topo.replicas[0]
        argv = rank_command(inv, topo, rep, rep.ranks[0])
        assert ("memlock=-1" in argv) is value
        assert "stack=67108864" in argv and "--gpus" in argv


def test_memlock_defaults_to_unlimited() -> None:
    inv = load_and_check(ROOT / "inventory" / "h200-bf16.yaml").loaded.inventory
    assert inv.serving.memlock_unlimited is True


def test_verify_pass_after_a_plan_without_changes() -> None:
    pb = load_playbook(str(ROOT / "playbooks" / "up.yaml"))
    only = verify_only(pb)
    assert [s.task_name for s in only.steps] == ["readiness", "smoke", "router.register"]
    plan = RunReport("up", ["n1"], check=True, applied=False)
    for s in pb.steps:
        plan.steps.append(StepReport(s.index, s.name, s.task_name, {"n1": StepResult(Status.SKIPPED)}))
    real = RunReport("up", ["n1"], applied=True)
    for s in only.steps:
        real.steps.append(StepReport(s.index, s.name, s.task_name, {"n1": StepResult(Status.OK, "ready")}))
    merged = merge_verify(plan, real)
    assert merged.applied and not merged.check and merged.changes == 0
    assert len(merged.steps) == len(pb.steps)
    by_task = {s.task: s.results["n1"].status for s in merged.steps}
    assert by_task["readiness"] is Status.OK and by_task["smoke"] is Status.OK and by_task["launch"] is Status.SKIPPED


def test_serving_lines_print_endpoint_model_and_curl() -> None:
    from glm5cluster.cli.up_cmd import serving_lines

    checked = load_and_check(ROOT / "inventory" / "h200-bf16.yaml")
    inv, topo = checked.loaded.inventory, checked.topology
    head = topo.replicas[0].head.node.name
    for summary, shown in ((f"replica 0 ready in 42s since launch: {topo.replicas[0].endpoint} serves x", "ready in 42s"),
                           (f"replica 0 serving (up 3600s): {topo.replicas[0].endpoint} serves x", "serving for 3600s")):
        report = RunReport("up", [head], applied=True)
        report.steps.append(StepReport(9, "readiness", "readiness", {head: StepResult(Status.OK, summary)}))
        text = "\n".join(serving_lines(inv, topo, report))
        assert f"GLM-5 is serving: model id {inv.model.repo}" in text
        assert f"replica 0: {topo.replicas[0].endpoint}" in text and shown in text
        assert f"curl -s {topo.replicas[0].endpoint}/v1/chat/completions" in text


def test_up_refuses_a_missing_identity_file_before_connecting(tmp_path: Path, capsys: Any) -> None:
    from glm5cluster.cli.main import main

    inv = tmp_path / "inv.yaml"
    inv.write_text((ROOT / "inventory" / "h200-fp8.yaml").read_text()
                   + "ssh:\n  identity_file: ./missing-key\n")
    assert main(["up", str(inv), "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"ssh.identity_file: {tmp_path / 'missing-key'} does not exist" in err
