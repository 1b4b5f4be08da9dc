"""`glm5cluster up INV`: from bare hosts to a serving, verified GLM-5 (``playbooks/up.yaml``).

Plans and applies the playbook through the engine with the live display and recap, then
prints where to send requests. A re-run on a healthy cluster changes nothing; a replica with a
dead rank is restarted as a whole.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from glm5cluster.cli.confirm import TerminalConfirm
from glm5cluster.cli.display import Display
from glm5cluster.cli.recap_json import emit, format_option, progress_stream, report_doc
from glm5cluster.cli.session import (
    FORKS_HELP,
    break_lock_option,
    connected,
    secrets_of,
    show_outcome,
    transport_option,
)
from glm5cluster.cli.verdict import load_and_verify
from glm5cluster.engine.playbook import Playbook, load_playbook, splice_site
from glm5cluster.engine.procedures.rollout import save_applied
from glm5cluster.engine.report import RunReport, Status
from glm5cluster.engine.runlog import RunLog
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.model.inventory import Inventory
from glm5cluster.sglang.args import served_model_name
from glm5cluster.topology import Topology

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "up.yaml"


def default_playbook() -> str:
    local = Path("playbooks") / "up.yaml"
    return str(local if local.is_file() else PLAYBOOK)


def with_overrides(pb: Playbook, **values: object) -> Playbook:
    """Set CLI-given parameters on every step whose Params has the field (e.g. readiness
    ``timeout``, gpu.reboot ``allow_reboot``)."""
    steps = []
    for step in pb.steps:
        fields = type(step.params).model_fields
        update = {k: v for k, v in values.items() if v is not None and k in fields}
        if update:
            params = type(step.params).model_validate({**step.params.model_dump(), **update})
            step = dataclasses.replace(step, params=params)
        steps.append(step)
    return dataclasses.replace(pb, steps=tuple(steps))


VERIFY_STEPS = ("readiness", "smoke", "router.register")  # steps that change nothing on a converged
# cluster (router.register only checks the workers and sends the smoke test through the router):
# run for real after a no-change plan


def verify_only(pb: Playbook) -> Playbook:
    """The playbook's readiness and smoke steps (their indexes kept for the display)."""
    return dataclasses.replace(pb, steps=tuple(s for s in pb.steps if s.task_name in VERIFY_STEPS))


def merge_verify(plan: RunReport, verify: RunReport) -> RunReport:
    """The plan pass (no changes) with its check-mode readiness/smoke results replaced by the
    real ones: what an interactive `up` on a converged cluster did."""
    real = {s.index: s for s in verify.steps}
    steps = [real.get(s.index, s) for s in plan.steps]
    return dataclasses.replace(plan, steps=steps, check=False, applied=True, aborted=verify.aborted,
                               stopped={**plan.stopped, **verify.stopped},
                               duration=plan.duration + verify.duration)


def serving_lines(inv: Inventory, topo: Topology, report: RunReport) -> list[str]:
    model = served_model_name(inv)
    key_env = inv.serving.secrets.api_key_env
    ready = {h: r for s in report.steps if s.task == "readiness" for h, r in s.results.items()}
    lines = ["", f"GLM-5 is serving: model id {model}"]
    for rep in topo.replicas:
        r = ready.get(rep.head.node.name)
        m = re.search(r"(ready in \d+s|serving \(up \d+s)", r.summary) if r else None
        took = m.group(1).replace("serving (up", "serving for") if m else ""
        lines.append(f"  replica {rep.index}: {rep.endpoint}  (node 0: {rep.head.node.name}"
                     + (f", {took}" if took else "") + ")")
    if topo.router is not None:
        lines.append(f"  router: {topo.router.url}")
    url = (topo.router.url if topo.router else topo.replicas[0].endpoint) + "/v1/chat/completions"
    auth = f" -H \"Authorization: Bearer ${key_env}\"" if key_env else ""
    body = ('{"model": "' + model + '", "messages": [{"role": "user", "content": "Hello"}], '
            '"chat_template_kwargs": {"enable_thinking": false}}')
    lines += ["", "Try it:", f"  curl -s {url} -H 'Content-Type: application/json'{auth} \\",
              f"    -d '{body}'"]
    return lines


def serving_doc(inv: Inventory, topo: Topology) -> dict[str, object]:
    """Where to send requests (``--format json``)."""
    return {"model": served_model_name(inv),
            "replicas": [{"index": rep.index, "endpoint": rep.endpoint, "node0": rep.head.node.name}
                         for rep in topo.replicas],
            "router": topo.router.url if topo.router is not None else None}


@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--check", is_flag=True, help="Show what would change; change nothing.")
@click.option("--limit", multiple=True, metavar="HOST|GROUP[,...]", help="Only these hosts or groups "
              "(a replica is launched only when all its hosts are included).")
@click.option("--allow-reboot", is_flag=True, help="Reboot hosts whose new GPU driver needs it.")
@click.option("--accept-new-host-keys", is_flag=True,
              help="Record unknown host keys in the inventory's known_hosts (changed keys are always refused).")
@click.option("--ready-timeout", type=click.FloatRange(min=1), default=None,
              help="Seconds to wait for each replica to serve (default serving.readiness_timeout, 3600).")
@click.option("--restart", is_flag=True, help="Restart every TP group even when unchanged.")
@click.option("--skip-nccl", is_flag=True, help="Skip the NCCL all-reduce gate before a first launch.")
@click.option("--verify-weights", is_flag=True, help="Re-hash every weight file (ignore the manifest stamps).")
@click.option("--forks", type=click.IntRange(1, 256), default=32, show_default=True, help=FORKS_HELP)
@click.option("--verbose", "-v", is_flag=True, help="Print every host's result, not only changes and failures.")
@click.option("--site", "site_path", default=None, metavar="PLAYBOOK",
              type=click.Path(dir_okay=False, path_type=str),
              help="Your own site steps (python: or task: steps), each placed by its `at:` "
                   "(before_stack, before_launch, after_ready).")
@click.option("--playbook", "playbook_path", default=None, hidden=True, help="Another up playbook (tests).")
@format_option
@break_lock_option
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, yes: bool, check: bool, limit: tuple[str, ...],
            allow_reboot: bool, accept_new_host_keys: bool, ready_timeout: float | None, restart: bool, skip_nccl: bool,
            verify_weights: bool, forks: int, verbose: bool, site_path: str | None, playbook_path: str | None,
            fmt: str, transport: str | None, break_lock: bool) -> None:
    """Bring INVENTORY's hosts to a serving, verified GLM-5 and print where to send requests.

    facts -> preflight -> GPU stack -> SGLang -> weights -> launch -> readiness -> smoke test.
    Exit code 0 when every replica serves and passed its smoke test, 1 otherwise, 2 for bad input.
    """
    checked = load_and_verify(inventory)  # validate's and plan's verdict (local files included)
    loaded, topo = checked.loaded, checked.topology
    for w in checked.warnings:
        click.echo(f"warning: {w}", err=True)
    base = load_playbook(playbook_path or default_playbook())
    if site_path:
        base = splice_site(base, load_playbook(site_path))
    pb = with_overrides(base, timeout=ready_timeout,
                        allow_reboot=True if allow_reboot else None, restart=True if restart else None,
                        skip_nccl=True if skip_nccl else None)
    display = Display(progress_stream(fmt), verbose=verbose)
    log = RunLog(pb.name, secrets=secrets_of(loaded.inventory))
    confirm = TerminalConfirm(display)

    options = RunOptions(check=check, limit=limit, forks=forks, allow_reboot=allow_reboot,
                         verify_weights=verify_weights)
    with connected(loaded, display, log, accept_new_host_keys, transport, lock=not check,
                   break_lock=break_lock) as pool:
        report = run_playbook(pb, loaded.inventory, loaded.nodes, pool, options, display, log,
                              confirm=None if (yes or check) else confirm, topology=topo)
        if not (yes or check or report.applied or report.aborted or report.changes or report.exit_code):
            # Nothing to change, so the plan pass was the run; readiness and smoke only look,
            # so they run for real: a converged `up` still proves the cluster serves.
            verify = run_playbook(verify_only(pb), loaded.inventory, loaded.nodes, pool, options,
                                  display, log, confirm=None, topology=topo)
            report = merge_verify(report, verify)
    show_outcome(display, report, log, check)
    smoke_ok = any(r.status is Status.OK for s in report.steps if s.task == "smoke" for r in s.results.values())
    serving = report.exit_code == 0 and report.applied and smoke_ok
    if serving and not limit:
        save_applied(loaded)  # what `rollout --rollback` goes back to
    if fmt == "json":
        doc = report_doc("up", report, log.dir)
        doc["serving"] = serving_doc(loaded.inventory, topo) if serving else None
        emit(doc)
    elif serving:
        for line in serving_lines(loaded.inventory, topo, report):
            click.echo(line)
    ctx.exit(2 if confirm.refused else report.exit_code)
