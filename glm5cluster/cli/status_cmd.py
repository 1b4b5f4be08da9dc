"""`glm5cluster status INV [--format json]`: every replica's ranks (and what each runs: the image
digest or the venv's SGLang version), node 0's health, model and version, uptime, and the verdict (serving / starting / broken / stopped). Exit 0 when every
replica serves, else 1."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

import click

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.session import FORKS_HELP, connect_options, transport_option
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.procedures.router import RouterStatus, router_status
from glm5cluster.engine.procedures.status import ClusterStatus, ReplicaStatus, collect
from glm5cluster.facts.replica import Verdict

_HINTS = {
    Verdict.BROKEN: "a TP group restarts as a whole: run `glm5cluster up {inv}` "
                    "(`glm5cluster logs {inv} --replica {i}` shows every rank's log)",
    Verdict.STOPPED: "start it with `glm5cluster up {inv}`",
    Verdict.STARTING: "follow it with `glm5cluster logs {inv} --replica {i} --follow`",
    Verdict.UNKNOWN: "check SSH to the host (`glm5cluster exec {inv} --limit HOST -- true`)",
}


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _uptime(since: float | None, now: float | None) -> float | None:
    return None if since is None or now is None else now - since


def replica_json(rep: ReplicaStatus) -> dict[str, Any]:
    j = rep.judgement
    head_state = rep.ranks[0].view.state if rep.ranks else None
    return {
        "index": rep.index,
        "verdict": j.verdict.value,
        "reason": j.reason,
        "endpoint": rep.endpoint,
        "model": rep.model,
        "served_models": list(rep.head.model_ids) if rep.head else [],
        "health": rep.head.health.status if rep.head else None,
        "sglang_version": rep.version,
        "uptime_s": _uptime(head_state.since, rep.now) if head_state and head_state.up else None,
        "failing": None if j.rank is None or j.verdict != Verdict.BROKEN else {
            "rank": j.rank, "host": j.host, "cause": j.cause, "fix": j.fix, "evidence": j.evidence},
        "ranks": [{
            "rank": rs.view.rank,
            "host": rs.view.host,
            "target": rs.target,
            "state": rs.view.state.state,
            "detail": rs.view.state.detail,
            "since": rs.view.state.since,
            "uptime_s": _uptime(rs.view.state.since, rep.now) if rs.view.state.up else None,
            "exit_code": rs.view.state.exit_code,
            "signal": rs.view.state.signal,
            "phase": rs.view.phase.label if rs.view.state.up else None,
            "error": rs.error or None,
            "note": rs.note or None,
            "runs": rs.runs or None,
            "others": [{"name": i.name, "state": i.state, "runtime": i.runtime_mode} for i in rs.others],
        } for rs in rep.ranks],
    }


def status_json(st: ClusterStatus) -> dict[str, Any]:
    return {"cluster": st.cluster, "runtime": st.runtime, "serving": st.all_serving,
            "replicas": [replica_json(r) for r in st.replicas]}


def print_text(st: ClusterStatus, inv: str, out: TextIO) -> None:
    n = len(st.replicas)
    out.write(f"cluster {st.cluster} ({st.runtime} runtime, {n} replica{'s' if n != 1 else ''})\n")
    for rep in st.replicas:
        j = rep.judgement
        head = rep.ranks[0].view.state if rep.ranks else None
        bits = [f"replica {rep.index}: {j.verdict.value.upper()}", rep.endpoint]
        if rep.head and rep.head.model_ids:
            bits.append("model " + ", ".join(rep.head.model_ids))
        if rep.version:
            bits.append(f"sglang {rep.version}")
        if j.verdict == Verdict.SERVING and head is not None:
            bits.append("up " + duration(_uptime(head.since, rep.now)))
        out.write("  ".join(bits) + "\n")
        out.write(f"  {j.reason}\n")
        width = max(len(rs.view.host) for rs in rep.ranks) if rep.ranks else 4
        for rs in rep.ranks:
            s = rs.view.state
            state = f"{s.state} ({s.detail})" if s.detail and s.state != "unreachable" else s.state
            when = ("up " + duration(_uptime(s.since, rep.now))) if s.up else \
                (s.how_it_ended() if s.state == "failed" else "")
            phase = rs.view.phase.label if s.up and j.verdict == Verdict.STARTING else ""
            line = f"    rank {rs.view.rank}  {rs.view.host:<{width}}  {rs.target}  {state}"
            out.write("  ".join(x for x in (line, when, phase, rs.runs) if x) + "\n")
            if rs.error:
                out.write(f"      {rs.error}\n")
            if rs.note:
                out.write(f"      note: {rs.note}\n")
            for other in rs.others:
                out.write(f"      also here: {other.name} ({other.state}, {other.runtime_mode} runtime)\n")
        if j.verdict == Verdict.BROKEN and j.cause:
            out.write(f"  probable cause: {j.cause}\n")
            if j.evidence:
                out.write(f"    | {j.evidence}\n")
            if j.fix:
                out.write(f"  fix: {j.fix}\n")
        hint = _HINTS.get(j.verdict)
        if hint:
            out.write("  hint: " + hint.format(inv=inv, i=rep.index) + "\n")


@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object on stdout for scripts.")
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys (changed keys are always refused).")
@click.option("--forks", type=click.IntRange(1, 256), default=32, show_default=True,
              help=FORKS_HELP)
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, fmt: str, accept_new_host_keys: bool, forks: int,
            transport: str | None) -> None:
    """Show every replica of INVENTORY: each rank's unit/container and uptime, node 0's health,
    the model it serves, the SGLang version, and a verdict; for a broken replica, the first
    failing rank and the probable cause from its log. Exit code 0 when all replicas serve."""
    checked = load_and_check(inventory)
    inv = checked.loaded.inventory
    key_env = inv.serving.secrets.api_key_env
    api_key = os.environ.get(key_env) if key_env else None
    topo = checked.topology
    rst: RouterStatus | None = None
    with ConnectionPool(checked.loaded.nodes, connect_options(accept_new_host_keys, transport)) as pool:
        st = collect(inv, topo, pool, api_key, forks)
        if topo.router is not None:
            rst = router_status(lambda h, c: pool.get(h).run(c), inv, topo)
    if fmt == "json":
        doc = status_json(st)
        if rst is not None:
            doc["router"] = router_json(rst)
            doc["serving"] = doc["serving"] and rst.ok
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_text(st, inventory, sys.stdout)
        if rst is not None:
            print_router(rst, inventory, sys.stdout)
        if key_env and not api_key:
            sys.stdout.write(f"note: {key_env} is not set here: /v1/models was asked without the API key\n")
    ctx.exit(0 if st.all_serving and (rst is None or rst.ok) else 1)


def router_json(r: RouterStatus) -> dict[str, Any]:
    return {"host": r.host, "url": r.url, "unit": r.unit, "unit_state": r.unit_state, "ok": r.ok,
            "ready": r.state.ready, "readiness": r.state.readiness, "error": r.state.error,
            "workers": [{"id": w.id, "url": w.url, "replica": r.replica_of(w.url), "healthy": w.healthy,
                         "load": w.load} for w in r.state.workers],
            "missing_replicas": list(r.missing), "unhealthy_replicas": list(r.unhealthy),
            "unknown_workers": list(r.unknown)}


def print_router(r: RouterStatus, inv: str, out: TextIO) -> None:
    ready = ("ready" if r.state.ready else f"NOT READY ({r.state.readiness or r.state.error})"
             if r.state.live else f"not answering ({r.state.error})")
    out.write(f"router on {r.host}: {'OK' if r.ok else 'DEGRADED'}  {r.url}  unit {r.unit} {r.unit_state}  "
              f"/readiness {ready}\n")
    for w in r.state.workers:
        rep = r.replica_of(w.url)
        who = f"replica {rep}" if rep is not None else "not in the inventory"
        health = "healthy" if w.healthy else "UNHEALTHY (the router's health checks of its /health fail)"
        load = f"  load {w.load}" if w.load is not None else ""
        out.write(f"    worker {w.id}  {w.url}  {who}  {health}{load}\n")
    for i in r.missing:
        out.write(f"    replica {i}: not registered in the router\n")
    if r.missing or r.unhealthy:
        out.write(f"  hint: `glm5cluster up {inv}` registers every serving replica; "
                  f"`glm5cluster logs {inv} --replica N` for an unhealthy one\n")
