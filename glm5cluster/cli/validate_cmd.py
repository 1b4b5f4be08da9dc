"""`glm5cluster validate INV...`: check inventories; every problem at once, exit 2 on any.

It runs every check `plan` runs (`cli/verdict.py`): the two never disagree."""

from __future__ import annotations

import json
from typing import Any

import click

from glm5cluster.cli.verdict import load_and_verify
from glm5cluster.errors import InputProblems


@click.command()
@click.argument("inventories", nargs=-1, required=True, metavar="INV...",
                type=click.Path(dir_okay=True, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object on stdout for scripts (files, ok, hosts, replicas, problems, warnings).")
@click.pass_context
def command(ctx: click.Context, inventories: tuple[str, ...], fmt: str) -> None:
    """Check inventory files: schema, secrets, hosts, ports, local files, hardware, topology
    and every node's launch arguments (as `plan` renders them).

    Prints `ok: N hosts, M replicas` per valid file, warnings, and every error as
    `error: file:line: field.path: what is wrong (hint)`. Exit code 2 when any file has errors.
    """
    failed = False
    files: list[dict[str, Any]] = []
    for path in inventories:
        try:
            checked = load_and_verify(path)
        except InputProblems as exc:
            failed = True
            files.append({"file": path, "ok": False, "warnings": [],
                          "problems": [{"file": p.file, "line": p.line, "field": p.path,
                                        "message": p.message, "hint": p.hint} for p in exc.problems]})
            if fmt == "text":
                for problem in exc.problems:
                    click.echo(f"error: {problem}", err=True)
            continue
        topo = checked.topology
        hosts = len(checked.loaded.inventory.hosts)
        replicas = len(topo.replicas)
        files.append({"file": path, "ok": True, "hosts": hosts, "replicas": replicas,
                      "router": topo.router.node.name if topo.router is not None else None,
                      "problems": [], "warnings": [str(w) for w in checked.warnings]})
        if fmt == "json":
            continue
        prefix = f"{path}: " if len(inventories) > 1 else ""
        router = f", router on {topo.router.node.name}" if topo.router is not None else ""
        click.echo(f"ok: {prefix}{hosts} host{'s' if hosts != 1 else ''}, "
                   f"{replicas} replica{'s' if replicas != 1 else ''}{router}")
        for warning in checked.warnings:
            click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        click.echo(json.dumps({"ok": not failed, "files": files}, indent=2))
    ctx.exit(2 if failed else 0)
