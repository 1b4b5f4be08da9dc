"""`glm5cluster rollout INV`: bring a running cluster to what INV now says (SGLang version or
image, launch flags, weights revision), one replica group at a time behind the router
(``engine/procedures/rollout_run.py``). ``--check`` says which groups would roll and why;
``--rollback`` rolls back to the inventory the last successful `up`/`rollout` applied."""

from __future__ import annotations

from pathlib import Path

import click

from glm5cluster.cli.display import Display
from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.session import (
    FORKS_HELP,
    break_lock_option,
    connected,
    secrets_of,
    transport_option,
)
from glm5cluster.cli.up_cmd import with_overrides
from glm5cluster.engine.playbook import load_playbook
from glm5cluster.engine.procedures.rollout import load_applied
from glm5cluster.engine.procedures.rollout_run import RolloutOptions, run_rollout
from glm5cluster.engine.runlog import RunLog
from glm5cluster.topology import plan_topology

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "rollout.yaml"


@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.option("--check", is_flag=True, help="Show which replica groups would roll and why; change nothing.")
@click.option("--max-unavailable", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Replica groups out of the router at once.")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Seconds to wait for node 0 of a group to finish its requests before stopping it.")
@click.option("--allow-downtime", is_flag=True, help="Accept that nothing serves meanwhile (a single "
              "replica, or --max-unavailable covering every replica).")
@click.option("--rollback", is_flag=True, help="Roll back to the inventory the last successful `up` or "
              "`rollout` applied (kept under ~/.glm5cluster/applied/<cluster>/).")
@click.option("--ready-timeout", type=click.FloatRange(min=1), default=None,
              help="Seconds to wait for a group to serve (default serving.readiness_timeout).")
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys (changed keys are always refused).")
@click.option("--forks", type=click.IntRange(1, 256), default=32, show_default=True, help=FORKS_HELP)
@click.option("--verbose", "-v", is_flag=True, help="Print every host's result, not only changes and failures.")
@break_lock_option
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, check: bool, max_unavailable: int, drain_timeout: float,
            allow_downtime: bool, rollback: bool, ready_timeout: float | None, accept_new_host_keys: bool,
            forks: int, verbose: bool, transport: str | None, break_lock: bool) -> None:
    """Roll INVENTORY's changes onto the running cluster one replica group at a time: out of the
    router, drained, stopped, changed, started, ready, smoke-tested, back in; then the next.
    A group that fails stays out of the router and no other group is touched.
    Exit code 0 when every group runs what the inventory says, 1 when a group failed, 2 for bad
    input or a rollout that would stop serving (see --allow-downtime)."""
    checked = load_and_check(inventory)
    loaded, topo = checked.loaded, checked.topology
    if rollback:
        loaded = load_applied(loaded.inventory.cluster.name)
        topo = plan_topology(loaded.inventory, loaded.nodes)
        click.echo(f"rollback: to the inventory applied last ({loaded.path})")
    for w in checked.warnings:
        click.echo(f"warning: {w}", err=True)
    pb = load_playbook(str(PLAYBOOK))
    if ready_timeout is not None:
        pb = with_overrides(pb, timeout=ready_timeout)
    opts = RolloutOptions(check=check, max_unavailable=max_unavailable, drain_timeout=drain_timeout,
                          allow_downtime=allow_downtime, ready_timeout=ready_timeout, forks=forks)
    display = Display(verbose=verbose)
    log = RunLog("rollout", secrets=secrets_of(loaded.inventory))
    # the cluster's run lock (one changing run at a time), released on every way out, Ctrl-C too
    with connected(loaded, display, log, accept_new_host_keys, transport, lock=not check,
                   break_lock=break_lock) as pool:
        code = run_rollout(loaded, topo, pool, pb, opts, display, log, lambda m: click.echo(m), inventory)
    click.echo(f"run log: {log.dir}")
    ctx.exit(code)
