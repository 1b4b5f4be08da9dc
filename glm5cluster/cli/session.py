"""What the commands that reach hosts share: transport options, a connection pool for the run, the recap."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click

from glm5cluster.cli.display import Display
from glm5cluster.connect.pool import ConnectionPool, ConnectOptions
from glm5cluster.engine.report import RunReport
from glm5cluster.engine.runlog import RunLog
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


@contextmanager
def connected(loaded: LoadedInventory, display: Display, log: RunLog, accept_new_host_keys: bool,
              transport: str | None) -> Iterator[ConnectionPool]:
    """One connection per host for the whole run; the display and run log are closed after it."""
    try:
        with ConnectionPool(loaded.nodes, connect_options(accept_new_host_keys, transport)) as pool:
            yield pool
    finally:
        display.close()
        log.close()


def show_outcome(display: Display, report: RunReport, log: RunLog, check: bool) -> None:
    """Under --check the plan is what the user asked to see; then the per-host recap."""
    if check and report.changes:
        display.show_plan(report)
    display.recap(report, log.dir)
