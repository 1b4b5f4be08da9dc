"""`glm5cluster preflight INV [--nccl] [--format json]`: every preflight check on its own, per node.

Checks (see the README's "Preflight"): network, ports, fabric, gpu, runtime, weights, limits, and
with ``--nccl`` the NCCL all-reduce gate. Each check runs by itself (one failing does not hide the
next). Exit 0 when every check passed on every node, 1 otherwise, 2 for bad input.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import click

from glm5cluster.cli.display import Display
from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.session import break_lock_option, connected, secrets_of, transport_option
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.procedures.preflight import EVERY_CHECK, Preflight, PreflightParams
from glm5cluster.engine.report import StepResult
from glm5cluster.engine.runlog import RunLog
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.nodes import Node
from glm5cluster.topology import Topology

CHECKS = [c for c in EVERY_CHECK if c != "nccl"]


@dataclass(frozen=True)
class Row:
    check: str
    host: str
    result: StepResult
    seconds: float


def run_checks(inv: Inventory, nodes: list[Node], topo: Topology, pool: ConnectionPool, checks: list[str],
               log: RunLog | None) -> list[Row]:
    hosts = tuple(r.node.name for rep in topo.replicas for r in rep.ranks)
    rows: list[Row] = []
    for i, check in enumerate(checks):
        ctx = ClusterContext(hosts, {n.name: n for n in nodes}, inv, topo, False, None, f"preflight {check}", i,
                             32, pool, lambda e: None, log)
        t0 = time.monotonic()
        got = Preflight().run(PreflightParams.model_validate({"checks": [check]}), ctx)
        took = time.monotonic() - t0
        rows += [Row(check, h, got[h], took) for h in hosts if h in got]
    return rows


def rows_json(cluster: str, rows: list[Row], seconds: float) -> dict[str, Any]:
    return {"cluster": cluster, "ok": all(not r.result.failed for r in rows), "seconds": round(seconds, 2),
            "results": [{"check": r.check, "host": r.host, "status": r.result.status.value,
                         "message": r.result.message or r.result.summary, "fix": r.result.hint or None} for r in rows]}


def print_table(cluster: str, rows: list[Row], seconds: float, out: TextIO) -> None:
    wc = max([len("CHECK")] + [len(r.check) for r in rows])
    wh = max([len("NODE")] + [len(r.host) for r in rows])
    out.write(f"preflight of cluster {cluster}\n{'CHECK':<{wc}}  {'NODE':<{wh}}  RESULT  DETAIL\n")
    for r in rows:
        status = "ok" if not r.result.failed else r.result.status.value.upper()
        detail = _detail(r)
        out.write(f"{r.check:<{wc}}  {r.host:<{wh}}  {status:<6}  {detail}\n")
        if r.result.failed and r.result.hint:
            out.write(f"{'':<{wc}}  {'':<{wh}}  {'fix:':<6}  {r.result.hint}\n")
    bad = sorted({r.host for r in rows if r.result.failed})
    verdict = "all checks passed" if not bad else f"FAILED on {', '.join(bad)}"
    out.write(f"{verdict} ({seconds:.1f} s)\n")


def _detail(r: Row) -> str:
    if not r.result.failed:  # "replica 0 rank 1: fabric ok (notes)" -> "notes"
        _, _, notes = r.result.summary.partition(" ok")
        return notes.strip().removeprefix("(").removesuffix(")") or "-"
    return r.result.message.removeprefix(f"{r.host}: ")


@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.option("--nccl", is_flag=True, help="Also run the NCCL all-reduce gate (uses every GPU for up to "
              "preflight.nccl_timeout seconds; not on a replica that is serving).")
@click.option("--check", "only", multiple=True, type=click.Choice(EVERY_CHECK),
              help="Run only these checks (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: the per-check, per-node table; json: the same results for scripts.")
@click.option("--accept-new-host-keys", is_flag=True,
              help="Record unknown host keys in the inventory's known_hosts (changed keys are always refused).")
@break_lock_option
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, nccl: bool, only: tuple[str, ...], fmt: str,
            accept_new_host_keys: bool, transport: str | None, break_lock: bool) -> None:
    """Check INVENTORY's hosts can form their groups, before anything is launched.

    A per-check, per-node table (or JSON): network and ports, the fabric between the nodes
    (interface, host names, MTU, TCP both ways, argv parity, RDMA), GPUs, SGLang, weights,
    limits; --nccl adds the NCCL all-reduce gate. Exit 0 when all pass, 1 otherwise.
    """
    checked = load_and_check(inventory)
    loaded, topo = checked.loaded, checked.topology
    for w in checked.warnings:
        click.echo(f"warning: {w}", err=True)
    checks = list(only) or CHECKS + (["nccl"] if nccl else [])
    log = RunLog("preflight", secrets=secrets_of(loaded.inventory))
    t0 = time.monotonic()
    with connected(loaded, Display(verbose=False), log, accept_new_host_keys, transport,
                   lock="nccl" in checks, break_lock=break_lock) as pool:
        rows = run_checks(loaded.inventory, list(loaded.nodes), topo, pool, checks, log)
    took = time.monotonic() - t0
    if fmt == "json":
        json.dump(rows_json(loaded.inventory.cluster.name, rows, took), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(loaded.inventory.cluster.name, rows, took, sys.stdout)
    ctx.exit(0 if all(not r.result.failed for r in rows) else 1)
