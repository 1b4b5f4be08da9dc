"""`glm5cluster plan INV`: what every node will run, computed before anything is touched.

Text output is plain: the topology (replicas, ranks, full addresses), the rationale, the
extra_args overrides, then each node's command on one line, shell-quoted and copy-pasteable
(never boxed, wrapped or truncated, whatever the terminal width). ``--format json`` prints one
document (``replicas[].nodes[]`` head first, each with ``host``, ``node_rank``, ``sglang_args``
and ``env``). Secrets appear by variable name only. The checks are ``validate``'s
(``cli/verdict.py``). Exit codes: 0 planned, 2 bad input (with file:line: field.path).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

import click

from glm5cluster import render
from glm5cluster.cli.inventory_io import CheckedInventory, plan_problem
from glm5cluster.cli.verdict import load_and_verify
from glm5cluster.errors import InputProblems, PlanError
from glm5cluster.model.inventory import Inventory
from glm5cluster.runtime import for_inventory
from glm5cluster.runtime.rank import rank_service
from glm5cluster.sglang import build_args, check_argv, profile_for, table_for
from glm5cluster.sglang.args import overrides
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
        "overrides": override_lines(inv, topo),
        "rationale": topo.rationale,
    }


def override_lines(inv: Inventory, topo: Topology) -> list[str]:
    """``--flag: cookbook -> extra_args`` for every cookbook flag extra_args replaces."""
    seen: list[str] = []
    for rep in topo.replicas:
        for ov in overrides(inv, rep):
            line = (f"{ov.flag}: {shlex.join(ov.cookbook) or '(switch)'} (cookbook) -> "
                    f"{shlex.join(ov.extra) or '(switch)'} (serving.extra_args)")
            if line not in seen:
                seen.append(line)
    return seen


def text_lines(checked: CheckedInventory, plans: list[NodePlan]) -> list[str]:
    """The text plan: plain lines, nothing wrapped or cut (each command is one line)."""
    inv, topo = checked.loaded.inventory, checked.topology
    prof = profile_for(inv.serving.sglang_version)
    out = [f"{inv.cluster.name}: {inv.model.repo} ({topo.precision.value}), "
           f"SGLang {inv.serving.sglang_version} ({prof.family} flags), runtime {inv.serving.runtime.value}",
           "", "Topology:"]
    for rep in topo.replicas:
        out.append(f"  replica {rep.index}: {rep.gpu_kind.value} tp={rep.tp_size} nnodes={rep.nnodes} "
                   f"endpoint {rep.endpoint} dist-init {rep.dist_init_addr}")
        for r in rep.ranks:
            role = "head, serves the API" if r.is_head else "joins the head"
            out.append(f"    rank {r.node_rank}/{rep.nnodes}: {r.node.name} ssh {r.node.ssh.address} "
                       f"cluster {r.node.cluster_address} {r.node.gpu_count}x {r.node.gpu_kind.value} ({role})")
    if topo.router is not None:
        out.append(f"  router: {topo.router.node.name} {topo.router.url} -> " + ", ".join(topo.router.worker_urls))
    out += ["", "Why:", f"  {topo.rationale}"]
    ovs = override_lines(inv, topo)
    if ovs:
        out += ["", "Overrides (serving.override_flags):"] + [f"  {line}" for line in ovs]
    out += ["", "Commands (one line per node):"]
    for p in plans:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in p.env.items())
        out.append(f"# {p.rank.node.name}: replica {p.replica.index} rank {p.rank.node_rank} ({p.service}); "
                   f"env: {env or '(none)'}"
                   + (f"; secrets (by name): {', '.join(p.secrets)}" if p.secrets else ""))
        out.append(shlex.join(p.command))
    if checked.warnings:
        out.append("")
        out += [f"warning: {w}" for w in checked.warnings]
    return out


@click.command()
@click.argument("inventory", metavar="INV", type=click.Path(dir_okay=False, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Rich drawing, or one JSON document.")
@click.pass_context
def command(ctx: click.Context, inventory: str, fmt: str) -> None:
    """Show the topology and every node's SGLang command for inventory INV."""
    checked = load_and_verify(inventory)
    plans = plan_nodes(checked)
    table = table_for(checked.loaded.inventory.serving.sglang_version)
    for p in plans:  # the builder's own output must always pass its version's option table
        report = check_argv(p.sglang_args, table)
        if report.errors:
            raise PlanError(f"internal: {p.rank.node.name}: {report.errors[0]}")
    if fmt == "json":
        click.echo(json.dumps(plan_document(checked, plans), indent=2))
    else:
        for line in text_lines(checked, plans):
            click.echo(line)
    ctx.exit(0)
