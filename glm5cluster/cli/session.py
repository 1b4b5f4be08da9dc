"""What the commands that reach hosts share: transport options, a connection pool for the run, the recap."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click

from glm5cluster.cli.display import Display
from glm5cluster.connect.pool import ConnectionPool, ConnectOptions
from glm5cluster.engine import runlock
from glm5cluster.engine.report import RunReport
from glm5cluster.engine.runlog import RunLog
from glm5cluster.errors import GlmError, TransportError
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.loader import LoadedInventory

TRANSPORTS = ["paramiko", "openssh"]
FORKS_HELP = "Hosts worked on in parallel (SSH connections and commands at once)."


def secrets_of(inv: Inventory) -> list[str]:
    """The values of the secrets the inventory names (by environment variable): masked in logs."""
    names = [inv.serving.secrets.api_key_env, inv.serving.secrets.hf_token_env,
             getattr(inv.model.source, "token_env", None)]
    return [os.environ[n] for n in names if n and os.environ.get(n)]


def connect_options(accept_new: bool, transport: str | None) -> ConnectOptions:
    chosen = transport or os.environ.get("GLM5CLUSTER_TRANSPORT") or "paramiko"
    if chosen not in TRANSPORTS:
        raise click.BadParameter(f"transport {chosen!r}: use one of {', '.join(TRANSPORTS)}")
    return ConnectOptions(accept_new_host_keys=accept_new, transport=chosen)  # type: ignore[arg-type]


def transport_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option("--transport", type=click.Choice(TRANSPORTS), default=None,
                        help="SSH implementation (default paramiko; env GLM5CLUSTER_TRANSPORT).")(fn)


def break_lock_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option("--break-lock", is_flag=True,
                        help="Remove another run's lock on the cluster first (only when that run is gone).")(fn)


@contextmanager
def connected(loaded: LoadedInventory, display: Display, log: RunLog, accept_new_host_keys: bool,
              transport: str | None, lock: bool = False, break_lock: bool = False) -> Iterator[ConnectionPool]:
    """One connection per host for the whole run; the display and run log are closed after it.

    ``lock``: the run changes the cluster, so it holds the cluster's run lock (``engine/runlock``)
    on the inventory's first host for its whole length, released on every way out (Ctrl-C too).
    """
    try:
        with ConnectionPool(loaded.nodes, connect_options(accept_new_host_keys, transport)) as pool:
            held = _take_lock(pool, loaded, break_lock) if lock else None
            try:
                yield pool
            finally:
                if held is not None:
                    _release_lock(pool, loaded, held)
    finally:
        display.close()
        log.close()


def _take_lock(pool: ConnectionPool, loaded: LoadedInventory, break_lock: bool) -> runlock.Holder | None:
    head, cluster = loaded.nodes[0].name, loaded.inventory.cluster.name
    holder = runlock.Holder.this_run()
    try:
        runlock.take(pool, head, cluster, holder, break_lock)
    except TransportError as e:  # the run itself names the unreachable host; it cannot collide there
        click.echo(f"warning: no run lock: {head} is unreachable ({e.message})", err=True)
        return None
    except KeyboardInterrupt:
        _release_lock(pool, loaded, holder)  # it may have been taken just before
        raise
    if break_lock:
        click.echo(f"note: the run lock of cluster {cluster!r} on {head} was broken and taken by this run",
                   err=True)
    return holder


def _release_lock(pool: ConnectionPool, loaded: LoadedInventory, holder: runlock.Holder) -> None:
    head = loaded.nodes[0].name
    try:
        if not runlock.release(pool, head, loaded.inventory.cluster.name, holder):
            click.echo(f"warning: could not release the run lock on {head}: "
                       f"the next run needs --break-lock", err=True)
    except (GlmError, Exception) as e:  # noqa: BLE001 - the run's own outcome comes first
        click.echo(f"warning: could not release the run lock on {head} ({e}): "
                   f"the next run needs --break-lock", err=True)


def show_outcome(display: Display, report: RunReport, log: RunLog, check: bool) -> None:
    """Under --check the plan is what the user asked to see; then the per-host recap."""
    if check and report.changes:
        display.show_plan(report)
    display.recap(report, log.dir)
