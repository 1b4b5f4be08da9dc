"""`glm5cluster run INV PLAYBOOK`: plan, show, confirm and apply a playbook on the inventory's hosts."""

from __future__ import annotations

import os
from pathlib import Path

import click

from glm5cluster.cli.confirm import TerminalConfirm
from glm5cluster.cli.display import Display
from glm5cluster.cli.inventory_io import remember_secrets
from glm5cluster.cli.recap_json import emit, format_option, progress_stream, report_doc
from glm5cluster.cli.session import (
    FORKS_HELP,
    break_lock_option,
    connected,
    secrets_of,
    show_outcome,
    transport_option,
)
from glm5cluster.engine.playbook import load_playbook
from glm5cluster.engine.runlog import RunLog
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.model.loader import load_inventory


def resolve_playbook(name: str) -> str:
    """A path as given, else ``playbooks/NAME.yaml`` (for `run INV converge`)."""
    if os.path.exists(name) or "/" in name:
        return name
    candidate = Path("playbooks") / (name if name.endswith(".yaml") else f"{name}.yaml")
    return str(candidate) if candidate.exists() else name




@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.argument("playbook", type=str)
@click.option("--check", is_flag=True, help="Show what would change; change nothing.")
@click.option("--limit", multiple=True, metavar="HOST|GROUP[,...]", help="Only these hosts or groups.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--max-fail", type=click.IntRange(min=0), default=None,
              help="Abort the run when more than N hosts have failed.")
@click.option("--accept-new-host-keys", is_flag=True,
              help="Record unknown host keys in the inventory's known_hosts (changed keys are always refused).")
@click.option("--forks", type=click.IntRange(1, 256), default=32, show_default=True, help=FORKS_HELP)
@click.option("--step-timeout", type=float, default=None, help="Seconds a step may take on all hosts.")
@click.option("--verbose", "-v", is_flag=True, help="Print every host's result, not only changes and failures.")
@click.option("--allow-reboot", is_flag=True,
              help="Let gpu.reboot restart hosts whose new driver needs it (otherwise the run stops there).")
@click.option("--verify-weights", is_flag=True,
              help="weights.stage re-hashes every weight file instead of trusting the manifest stamp.")
@format_option
@break_lock_option
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, playbook: str, check: bool, limit: tuple[str, ...],
            yes: bool, max_fail: int | None, accept_new_host_keys: bool, forks: int,
            step_timeout: float | None, verbose: bool, allow_reboot: bool, verify_weights: bool,
            fmt: str, transport: str | None, break_lock: bool) -> None:
    """Run PLAYBOOK (a file, or a name under playbooks/) on the hosts of INVENTORY.

    Plans every step first and asks before changing anything (unless --yes); a run with nothing
    to change is a single pass. Exit code 0 when every host succeeded, 1 when some failed or were
    unreachable, 2 for bad input (or changes refused without a terminal to confirm on).
    """
    loaded = load_inventory(inventory)
    remember_secrets(loaded.inventory)
    pb = load_playbook(resolve_playbook(playbook))
    display = Display(progress_stream(fmt), verbose=verbose)
    log = RunLog(pb.name, secrets=secrets_of(loaded.inventory))
    confirm = TerminalConfirm(display)

    options = RunOptions(check=check, limit=limit, max_fail=max_fail, forks=forks,
                         step_timeout=step_timeout, allow_reboot=allow_reboot, verify_weights=verify_weights)
    with connected(loaded, display, log, accept_new_host_keys, transport, lock=not check,
                   break_lock=break_lock) as pool:
        report = run_playbook(pb, loaded.inventory, loaded.nodes, pool, options, display, log,
                              confirm=None if (yes or check) else confirm)
    show_outcome(display, report, log, check)
    if fmt == "json":
        emit(report_doc("run", report, log.dir))
    ctx.exit(2 if confirm.refused else report.exit_code)
