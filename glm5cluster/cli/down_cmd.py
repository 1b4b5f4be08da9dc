"""`glm5cluster down INV [--purge] [--yes] [--limit]`: drain every head, stop every rank, remove the
cluster's units/containers and config files; with --purge also the weights, the venv or the image.

Only what is named for this cluster is touched (``engine/procedures/teardown.py``); a second
`down` finds nothing and changes nothing.
"""

from __future__ import annotations

import click

from glm5cluster.cli.confirm import TerminalConfirm
from glm5cluster.cli.display import Display
from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.recap_json import emit, format_option, progress_stream, report_doc
from glm5cluster.cli.session import (
    FORKS_HELP,
    break_lock_option,
    connected,
    show_outcome,
    transport_option,
)
from glm5cluster.engine.playbook import Playbook, Step
from glm5cluster.engine.procedures.router import RouterDown, RouterDownParams
from glm5cluster.engine.procedures.teardown import Teardown, TeardownParams
from glm5cluster.engine.report import RunReport
from glm5cluster.engine.runlog import RunLog
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.engine.selection import limit_hosts
from glm5cluster.model.nodes import Node
from glm5cluster.topology import Topology


def whole_replicas(nodes: list[Node], topology: Topology, limit: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """--limit widened to whole replicas (a TP group goes down as one): (hosts, notes)."""
    chosen = limit_hosts(nodes, limit)
    if not limit:
        return chosen, []
    wanted = set(chosen)
    notes = []
    for rep in topology.replicas:
        names = [r.node.name for r in rep.ranks]
        if wanted & set(names) and not set(names) <= wanted:
            notes.append(f"replica {rep.index} goes down as a whole: also {', '.join(n for n in names if n not in wanted)}")
            wanted |= set(names)
    return [n.name for n in nodes if n.name in wanted], notes


@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.option("--purge", is_flag=True, help="Also remove the weights directory, the venv (venv runtime) "
              "or the image (docker runtime), unless another cluster on the host uses them.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (--purge asks otherwise).")
@click.option("--limit", multiple=True, metavar="HOST|GROUP[,...]",
              help="Only the replicas these hosts belong to (whole replicas).")
@click.option("--check", is_flag=True, help="Show what would be stopped and removed; change nothing.")
@click.option("--drain-timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds a head may take to drain and stop before it is killed.")
@click.option("--keep-router", is_flag=True, help="Deregister the replicas from the router but leave the "
              "router running (replicas.router).")
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys (changed keys are always refused).")
@click.option("--forks", type=click.IntRange(1, 256), default=32, show_default=True, help=FORKS_HELP)
@click.option("--verbose", "-v", is_flag=True, help="Print every host's result.")
@format_option
@break_lock_option
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, purge: bool, yes: bool, limit: tuple[str, ...], check: bool,
            drain_timeout: float, keep_router: bool, accept_new_host_keys: bool, forks: int, verbose: bool,
            fmt: str, transport: str | None, break_lock: bool) -> None:
    """Take the cluster of INVENTORY down: each replica's head drains first (SIGTERM), then every
    rank stops; units, containers, env and secrets files are removed. With a router, the replicas
    going down are deregistered from it first, and a whole-cluster `down` also removes the router
    (unless --keep-router). Nothing of another cluster on the same hosts is touched. Exit code 0
    when every host is clean, 1 otherwise."""
    checked = load_and_check(inventory)
    loaded = checked.loaded
    hosts, notes = whole_replicas(list(loaded.nodes), checked.topology, limit)
    for note in notes:
        click.echo(f"note: {note}", err=fmt == "json")
    # a partial down (--limit) leaves the router serving the other replicas
    params = TeardownParams(purge=purge, drain_timeout=drain_timeout, keep_router=keep_router or bool(limit))
    pb = Playbook("down", "<glm5cluster down>", (Step(0, "down" + (" --purge" if purge else ""), "teardown",
                                                      Teardown(), params),))
    display = Display(progress_stream(fmt), verbose=verbose)
    log = RunLog(pb.name)
    confirm = TerminalConfirm(display, question="Stop the cluster and delete these files?",
                              what="--purge deletes data", hint="review the plan above and re-run with --yes")

    options = RunOptions(check=check, limit=tuple(hosts), forks=forks)
    topo = checked.topology
    router_report = None
    asks = purge and not (yes or check)
    with connected(loaded, display, log, accept_new_host_keys, transport, lock=not check,
                   break_lock=break_lock) as pool:

        def router_pass() -> RunReport:
            # A separate pass on the router host, so that --limit never widens the teardown.
            chosen = None if not limit else sorted(r.index for r in topo.replicas if r.head.node.name in hosts)
            rpb = Playbook("down", "<glm5cluster down>", (Step(0, "router", "router.down", RouterDown(),
                                                               RouterDownParams(replicas=chosen, keep_router=keep_router)),))
            assert topo.router is not None
            return run_playbook(rpb, loaded.inventory, loaded.nodes, pool,
                                RunOptions(check=check, limit=(topo.router.node.name,), forks=forks),
                                display, log, confirm=None, topology=topo)

        if topo.router is not None and not asks:
            router_report = router_pass()  # out of the router first: nothing is sent to a draining head
        report = run_playbook(pb, loaded.inventory, loaded.nodes, pool, options, display, log,
                              confirm=confirm if asks else None, topology=topo)
        if topo.router is not None and asks and not confirm.refused:
            router_report = router_pass()
    if router_report is not None:
        show_outcome(display, router_report, log, check)
    show_outcome(display, report, log, check)
    code = max(report.exit_code, router_report.exit_code if router_report else 0)
    if fmt == "json":
        doc = report_doc("down", report, log.dir)
        doc["exit_code"] = 2 if confirm.refused else code
        doc["notes"] = notes
        doc["router"] = report_doc("down", router_report, log.dir) if router_report is not None else None
        emit(doc)
    ctx.exit(2 if confirm.refused else code)
