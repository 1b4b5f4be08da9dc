"""`glm5cluster logs INV [--node NAME] [--replica N] [--follow] [--since TIME] [--lines N]`: every
rank's SGLang log, as its runtime keeps it (``runtime/``: the unit's journal, the container's
log), each line prefixed ``<node> r<replica> |``; merged in time order, or streamed from all ranks
at once with --follow until Ctrl-C."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import click

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.session import FORKS_HELP, connect_options, transport_option
from glm5cluster.commands import Shell
from glm5cluster.connect.pool import ConnectionPool, fan_out
from glm5cluster.facts.log_lines import LogLine, format_time, since_epoch
from glm5cluster.model.inventory import Inventory
from glm5cluster.redact import mask
from glm5cluster.runtime import Runtime, for_inventory, rank_stem
from glm5cluster.runtime.router import router_runtime, router_service
from glm5cluster.topology import Topology

DEFAULT_LINES = 100
FOLLOW_LINES = 10


@dataclass(frozen=True)
class Target:
    host: str
    replica: int | None  # None: the router
    rank: int
    name: str  # unit or container
    runtime: Runtime

    @property
    def prefix(self) -> str:
        return f"{self.host} {'router' if self.replica is None else f'r{self.replica}'}"


def targets(inventory: Inventory, topology: Topology, nodes: tuple[str, ...],
            replicas: tuple[int, ...]) -> list[Target]:
    rt = for_inventory(inventory)
    cluster = inventory.cluster.name
    known = {r.node.name for rep in topology.replicas for r in rep.ranks}
    for n in nodes:
        if n not in known:
            raise click.BadParameter(f"{n!r} serves no replica (hosts: {', '.join(sorted(known))})",
                                     param_hint="--node")
    indexes = {rep.index for rep in topology.replicas}
    for i in replicas:
        if i not in indexes:
            raise click.BadParameter(f"no replica {i} (replicas: {', '.join(map(str, sorted(indexes)))})",
                                     param_hint="--replica")
    out = []
    for rep in topology.replicas:
        if replicas and rep.index not in replicas:
            continue
        name = rt.target(rank_stem(cluster, rep.index))
        for r in rep.ranks:
            if not nodes or r.node.name in nodes:
                out.append(Target(r.node.name, rep.index, r.node_rank, name, rt))
    return out


def router_target(inventory: Inventory, topology: Topology) -> Target:
    """The router's service (``replicas.router``), through its runtime (``runtime/router.py``)."""
    if topology.router is None:
        raise click.BadParameter("this inventory has no router (replicas.router)", param_hint="--router")
    rt = router_runtime(inventory)
    return Target(topology.router.node.name, None, 0, rt.target(router_service(inventory, rt).stem), rt)


def log_command(t: Target, lines: int | None, since: float | None, follow: bool) -> Shell:
    body = t.runtime.log_script(t.name, lines=lines, since=since, follow=follow)
    if follow:
        # ends when the connection closes: the stream's stdin reaches EOF and the watcher kills it
        body = (f"exec 3<&0\n{body} &\np=$!\n"
                "(cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null) >/dev/null 2>&1 &\nwait $p")
    return Shell.sh(body, sudo=True, description=f"logs of {t.name} on {t.host}")


def merged(per_target: list[tuple[Target, list[LogLine]]]) -> list[tuple[Target, LogLine]]:
    """All lines in time order; a stable sort keeps each rank's own order for equal times."""
    rows = [(t, line) for t, lines in per_target for line in lines]
    return sorted(rows, key=lambda row: row[1].at if row[1].at is not None else float("-inf"))


def render(t: Target, line: LogLine, width: int) -> str:
    return f"{t.prefix:<{width}} | {format_time(line.at)} {mask(line.text)}"


FOLLOW_STOP_GRACE = 5.0  # seconds all follow streams get, together, to end after Ctrl-C


def _follow(pool: ConnectionPool, tgts: list[Target], lines: int, since: float | None,
            emit: Callable[[str], None]) -> int:
    stop = threading.Event()
    width = max(len(t.prefix) for t in tgts)
    errors: list[str] = []

    def run(t: Target) -> None:
        conn = pool.get(t.host)
        stream = getattr(conn, "stream", None)
        if stream is None:
            errors.append(f"{t.host}: this transport cannot stream (use --transport paramiko)")
            return

        def on_line(text: str) -> None:
            for parsed in t.runtime.parse_log(text):
                emit(render(t, parsed, width))

        try:
            stream(log_command(t, lines, since, follow=True), on_line, stop)
        except Exception as e:  # noqa: BLE001 - one host's failure must not stop the others
            errors.append(f"{t.host}: {getattr(e, 'message', None) or e}")

    threads = [threading.Thread(target=run, args=(t,), daemon=True, name=f"logs-{t.host}") for t in tgts]
    for th in threads:
        th.start()
    interrupted = False
    try:
        while any(th.is_alive() for th in threads):
            for th in threads:
                th.join(0.2)
    except KeyboardInterrupt:  # Ctrl-C ends --follow: exit 130 (as every command), errors aside
        interrupted = True
        stop.set()
        # one shared grace period for every stream (not 5 s per host in turn: 64 hosts would
        # hold the terminal for minutes); the threads are daemons and end with the process
        deadline = time.monotonic() + FOLLOW_STOP_GRACE
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
    for e in errors:
        click.echo(f"error: {e}", err=True)
    return 130 if interrupted else (1 if errors else 0)


@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.option("--node", "nodes", multiple=True, metavar="NAME", help="Only the ranks on these hosts.")
@click.option("--replica", "replicas", multiple=True, type=int, metavar="N", help="Only these replicas.")
@click.option("--router", "with_router", is_flag=True, help="Also the router's log (replicas.router); "
              "alone, only the router's.")
@click.option("--follow", "-f", is_flag=True, help="Stream new lines from every rank until Ctrl-C.")
@click.option("--since", metavar="TIME", help="Lines since TIME: 10m, 2h, 1d, @EPOCH or an ISO date/time.")
@click.option("--lines", "-n", type=click.IntRange(min=0), default=None,
              help=f"Last N lines per rank (default {DEFAULT_LINES}; with --since: all; with --follow: {FOLLOW_LINES}).")
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys (changed keys are always refused).")
@click.option("--forks", type=click.IntRange(1, 256), default=32, show_default=True, help=FORKS_HELP)
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, nodes: tuple[str, ...], replicas: tuple[int, ...], with_router: bool,
            follow: bool,
            since: str | None, lines: int | None, accept_new_host_keys: bool, forks: int,
            transport: str | None) -> None:
    """Show the SGLang logs of every rank (or --node / --replica ones; --router: the router's),
    merged in time order and prefixed by node and replica; --follow streams them until Ctrl-C."""
    checked = load_and_check(inventory)
    tgts = targets(checked.loaded.inventory, checked.topology, nodes, replicas)
    if with_router:
        tgts = ([] if not nodes and not replicas else tgts) + [router_target(checked.loaded.inventory, checked.topology)]
    try:
        since_at = since_epoch(since) if since else None
    except ValueError:
        raise click.BadParameter(f"{since!r}: use 10m, 2h, 1d, @EPOCH or an ISO date/time",
                                 param_hint="--since") from None
    count = lines if lines is not None else (FOLLOW_LINES if follow else (None if since_at else DEFAULT_LINES))
    out = sys.stdout
    lock = threading.Lock()

    def emit(text: str) -> None:
        with lock:
            out.write(text + "\n")
            out.flush()

    with ConnectionPool(checked.loaded.nodes, connect_options(accept_new_host_keys, transport)) as pool:
        if follow:
            ctx.exit(_follow(pool, tgts, count if count is not None else FOLLOW_LINES, since_at, emit))
        got = fan_out([f"{i}" for i in range(len(tgts))],
                      lambda i: pool.get(tgts[int(i)].host).run(log_command(tgts[int(i)], count, since_at, False)),
                      forks, timeout=300)
    failed = 0
    per: list[tuple[Target, list[LogLine]]] = []
    for i, t in enumerate(tgts):
        hr = got[str(i)]
        if hr.error is not None or hr.value is None:
            failed += 1
            click.echo(f"error: {t.host}: {getattr(hr.error, 'message', None) or hr.error}", err=True)
            continue
        res = hr.value
        if not res.ok:
            failed += 1
            click.echo(f"error: {t.host}: {t.name}: exit {res.exit_code}: {res.tail(3)}", err=True)
        per.append((t, t.runtime.parse_log(res.stdout)))
    width = max((len(t.prefix) for t in tgts), default=0)
    for t, line in merged(per):
        out.write(render(t, line, width) + "\n")
    ctx.exit(1 if failed else 0)
