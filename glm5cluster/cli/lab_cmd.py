"""``glm5cluster lab up|status|down``: the rehearsal lab of simulated GPU hosts."""

from __future__ import annotations

import dataclasses
import json
import os

import click
from rich.table import Table

from glm5cluster.cli.display import make_console
from glm5cluster.lab.addresses import DEFAULT_SUBNET
from glm5cluster.lab.dockerd import ensure_engine
from glm5cluster.lab.files import LabSettings
from glm5cluster.lab.manager import GPU_KINDS, down, known_labs, parse_overrides, status, up


@click.group(name="lab")
def command() -> None:
    """The rehearsal lab: containers that behave like bare-metal GPU servers."""


@command.command(name="up")
@click.option("--name", default="default", show_default=True, help="Lab name.")
@click.option("--hosts", "n_hosts", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Simulated GPU hosts (node-1 .. node-N).")
@click.option("--gpu", type=click.Choice(GPU_KINDS), default="H200", show_default=True,
              help="GPU kind of every host, spelled as the inventory's cluster.gpu.kind.")
@click.option("--gpus-per-node", type=click.IntRange(1, 16), default=8, show_default=True,
              help="GPUs each host reports.")
@click.option("--subnet", default=DEFAULT_SUBNET, show_default=True, help="Lab network (hosts at .11 up).")
@click.option("--sudo-user-hosts", type=click.IntRange(0, 64), default=0, show_default=True,
              help="The last N hosts are reached as user glm5 with passwordless sudo.")
@click.option("--host-override", "overrides", multiple=True, metavar="HOST:KEY=VALUE[,..]",
              help="e.g. node-2:gpus=4, node-3:driver=none, node-1:driver=550.90.12")
@click.option("--mirror/--no-mirror", default=True, show_default=True,
              help="Start the mirror host (apt repository, registry, package index, model hub).")
@click.option("--hub-shards", type=click.IntRange(1, 512), default=8, show_default=True,
              help="Safetensors shards in the simulated model repositories.")
@click.option("--hub-shard-mb", type=click.FloatRange(0.01, 4096), default=4.0, show_default=True,
              help="Size of each shard in MiB.")
@click.option("--hub-rate-mbps", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Total bandwidth cap of the simulated hub link in Mbit/s (0: none).")
@click.option("--hub-token-env", default=None, metavar="NAME",
              help="Require a hub token: the value of environment variable NAME (never an argument).")
@click.option("--docker-on-demand", is_flag=True,
              help="Hosts start dockerd on first use, not at boot (dockerd+containerd ~130 MiB RSS per host; for large labs).")
@click.option("--bench-clients/--no-bench-clients", default=True, show_default=True,
              help="The inventory installs the benchmark clients' dependencies (sglang[bench], sgl-eval; "
                   "~50 s more per `up`) and names the lab's question files, so `glm5cluster bench` runs all suites.")
@click.pass_context
def up_cmd(ctx: click.Context, name: str, n_hosts: int, gpu: str, gpus_per_node: int, subnet: str,
           sudo_user_hosts: int, overrides: tuple[str, ...], mirror: bool, hub_shards: int,
           hub_shard_mb: float, hub_rate_mbps: float, hub_token_env: str | None, docker_on_demand: bool,
           bench_clients: bool) -> None:
    """Create (or reconcile) a lab and write its inventory; its path is printed on stdout."""
    console = make_console(stderr=True, highlight=False, markup=False)
    settings = LabSettings(
        name=name, hosts=n_hosts, gpu=gpu, gpus_per_node=gpus_per_node, subnet=subnet,
        sudo_user_hosts=min(sudo_user_hosts, n_hosts), overrides=parse_overrides(list(overrides), n_hosts),
        mirror=mirror, hub_shards=hub_shards, hub_shard_mb=hub_shard_mb, hub_rate_mbps=hub_rate_mbps,
        hub_token=os.environ.get(hub_token_env, "") if hub_token_env else "",
        docker_on_demand=docker_on_demand, bench_clients=bench_clients,
    )
    client = ensure_engine(console)
    info = up(client, settings, console)
    click.echo(info.inventory)
    ctx.exit(0)


@command.command(name="status")
@click.option("--name", default=None, help="Lab name (default: every lab).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object on stdout for scripts.")
@click.pass_context
def status_cmd(ctx: click.Context, name: str | None, fmt: str) -> None:
    """Show the lab's hosts and their state."""
    console = make_console(highlight=False)
    client = ensure_engine(make_console(stderr=True, markup=False))
    names = [name] if name else known_labs(client)
    if fmt == "json":
        labs = [dataclasses.asdict(status(client, n)) for n in names]
        click.echo(json.dumps({"labs": labs}, indent=2))
        ctx.exit(0)
    if not names:
        console.print("no lab")
    for n in names:
        info = status(client, n)
        table = Table(title=f"lab {n} ({info.subnet or '?'}, network {info.network})")
        for col in ("host", "address", "container", "state", "systemd"):
            table.add_column(col)
        for h in info.hosts:
            table.add_row(h.name, h.address, h.container, h.state, h.system)
        console.print(table)
        console.print(f"inventory: {info.inventory}")
    ctx.exit(0)


@command.command(name="down")
@click.option("--name", default="default", show_default=True, help="Lab name.")
@click.pass_context
def down_cmd(ctx: click.Context, name: str) -> None:
    """Remove the lab's containers, network, volumes and files (nothing else)."""
    console = make_console(stderr=True, highlight=False, markup=False)
    down(ensure_engine(console), name, console)
    ctx.exit(0)


