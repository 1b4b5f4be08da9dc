"""`glm5cluster plan INV`: what every node will run, computed before anything is touched.

Text output draws the topology (replicas, ranks, addresses, rationale) and each node's command
with rich; ``--format json`` prints one document (``replicas[].nodes[]`` head first, each with
``host``, ``node_rank``, ``sglang_args`` and ``env``). Secrets appear by variable name only.
Exit codes: 0 planned, 2 bad input (with file:line: field.path).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

import click
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from glm5cluster import render
from glm5cluster.cli.inventory_io import CheckedInventory, load_and_check, plan_problem
from glm5cluster.errors import InputProblems, PlanError
from glm5cluster.model.inventory import Inventory
from glm5cluster.runtime import for_inventory
from glm5cluster.runtime.rank import rank_service
from glm5cluster.sglang import build_args, check_argv, profile_for, table_for
from glm5cluster.topology import RankAssignment, Replica, Topology


@dataclass(frozen=True)
class NodePlan:
    replica: Replica
    rank: RankAssignment
    sglang_args: list[str]
    env: dict[str, str]
    secrets: tuple[str, ...]
    command: list[str]
    service: str  # systemd unit or container name


def node_plan(inv: Inventory, topo: Topology, rep: Replica, rank: RankAssignment) -> NodePlan:
    args = build_args(inv, topo, rep, rank)
    rt = for_inventory(inv)
    svc = rank_service(inv, topo, rep, rank, rt)
    command, service = rt.command_argv(svc), rt.target(svc.stem)
    return NodePlan(rep, rank, args, render.node_env(inv, rank), render.secret_names(inv, rank),
                    command, service)


def plan_nodes(checked: CheckedInventory) -> list[NodePlan]:
    inv, topo = checked.loaded.inventory, checked.topology
    try:
        return [node_plan(inv, topo, rep, rank) for rep in topo.replicas for rank in rep.ranks]
    except PlanError as err:
        raise InputProblems([plan_problem(checked.loaded, err)]) from None


def plan_document(checked: CheckedInventory, plans: list[NodePlan]) -> dict[str, object]:
    inv, topo = checked.loaded.inventory, checked.topology
    replicas = []
    for rep in topo.replicas:
        nodes = [{
            "host": p.rank.node.name,
            "address": p.rank.node.ssh.address,
            "cluster_address": p.rank.node.cluster_address,
            "node_rank": p.rank.node_rank,
            "is_head": p.rank.is_head,
            "sglang_args": p.sglang_args,
            "env": p.env,
            "secrets": list(p.secrets),
            "service": p.service,
            "command": p.command,
        } for p in plans if p.replica.index == rep.index]
        replicas.append({
            "index": rep.index,
            "gpu_kind": rep.gpu_kind.value,
            "tp_size": rep.tp_size,
            "nnodes": rep.nnodes,
            "dist_init_addr": rep.dist_init_addr,
            "endpoint": rep.endpoint,
            "nodes": nodes,
        })
    router = None
    if topo.router is not None:
        router = {"host": topo.router.node.name, "url": topo.router.url, "port": topo.router.port,
                  "policy": topo.router.policy, "worker_urls": list(topo.router.worker_urls)}
    return {
        "cluster": inv.cluster.name,
        "model": inv.model.repo,
        "precision": topo.precision.value,
        "runtime": inv.serving.runtime.value,
        "sglang_version": inv.serving.sglang_version,
        "flag_profile": profile_for(inv.serving.sglang_version).family,
        "replicas": replicas,
        "router": router,
        "leftover": [n.name for n in topo.leftover],
        "warnings": [str(w) for w in checked.warnings],
        "rationale": topo.rationale,
    }


def display_command(argv: list[str]) -> str:
    """``shlex.join`` of argv, one flag (with its values) per line, continued with backslashes."""
    lines: list[list[str]] = [[]]
    for arg in argv:
        if arg.startswith("-") and lines[-1]:
            lines.append([])
        lines[-1].append(arg)
    return " \\\n    ".join(shlex.join(words) for words in lines)


def _draw(console: Console, checked: CheckedInventory, plans: list[NodePlan]) -> None:
    inv, topo = checked.loaded.inventory, checked.topology
    prof = profile_for(inv.serving.sglang_version)
    console.print(Text(f"{inv.cluster.name}: {inv.model.repo} ({topo.precision.value}), "
                       f"SGLang {inv.serving.sglang_version} ({prof.family} flags), "
                       f"runtime {inv.serving.runtime.value}", style="bold"))
    table = Table(title="Topology", show_lines=False)
    for col in ("replica", "rank", "host", "ssh address", "cluster address", "GPUs", "role"):
        table.add_column(col, overflow="fold")
    for rep in topo.replicas:
        for r in rep.ranks:
            role = f"head: {rep.endpoint}" if r.is_head else f"joins {rep.dist_init_addr}"
            table.add_row(str(rep.index), f"{r.node_rank}/{rep.nnodes}", r.node.name, r.node.ssh.address,
                          r.node.cluster_address, f"{r.node.gpu_count}x {r.node.gpu_kind.value}",
                          Text(role))
    console.print(table)
    if topo.router is not None:
        console.print(Text(f"router: {topo.router.node.name} {topo.router.url} -> "
                           + ", ".join(topo.router.worker_urls)))
    console.print(Panel(Text(topo.rationale), title="Why"))
    for p in plans:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in p.env.items())
        secrets = f"\nsecrets (by name): {', '.join(p.secrets)}" if p.secrets else ""
        body = Text(f"{display_command(p.command)}\n\nenv: {env or '(none)'}{secrets}")
        console.print(Panel(body, title=f"{p.rank.node.name}: replica {p.replica.index} rank "
                                        f"{p.rank.node_rank} ({p.service})"))
    for w in checked.warnings:
        console.print(Text(f"warning: {w}", style="yellow"))


@click.command()
@click.argument("inventory", metavar="INV", type=click.Path(dir_okay=False, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Rich drawing, or one JSON document.")
@click.pass_context
def command(ctx: click.Context, inventory: str, fmt: str) -> None:
    """Show the topology and every node's SGLang command for inventory INV."""
    checked = load_and_check(inventory)
    plans = plan_nodes(checked)
    table = table_for(checked.loaded.inventory.serving.sglang_version)
    for p in plans:  # the builder's own output must always pass its version's option table
        report = check_argv(p.sglang_args, table)
        if report.errors:
            raise PlanError(f"internal: {p.rank.node.name}: {report.errors[0]}")
    if fmt == "json":
        click.echo(json.dumps(plan_document(checked, plans), indent=2))
    else:
        _draw(Console(highlight=False), checked, plans)
    ctx.exit(0)
