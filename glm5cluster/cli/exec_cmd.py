"""`glm5cluster exec INV [--limit ...] -- COMMAND`: run an ad-hoc command on hosts."""

from __future__ import annotations

import shlex
import sys

import click

from glm5cluster.cli.display import host_width, print_exec
from glm5cluster.cli.session import FORKS_HELP, connect_options, transport_option
from glm5cluster.commands import CommandResult, Shell
from glm5cluster.connect.pool import ConnectionPool, fan_out
from glm5cluster.engine.selection import limit_hosts
from glm5cluster.model.loader import load_inventory


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND...")
@click.option("--limit", multiple=True, metavar="HOST|GROUP[,...]", help="Only these hosts or groups.")
@click.option("--sudo", is_flag=True, help="Run through sudo -n for non-root users.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds the command may run per host (default 300, or the inventory's ssh.command_timeout).")
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys (changed keys are always refused).")
@click.option("--forks", type=click.IntRange(1, 256), default=32, show_default=True, help=FORKS_HELP)
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, cmd: tuple[str, ...], limit: tuple[str, ...],
            sudo: bool, timeout: float | None, accept_new_host_keys: bool, forks: int,
            transport: str | None) -> None:
    """Run COMMAND on every host (or --limit ones) and print each host's output and exit code.

    One word after `--` is a shell script (`-- 'df -h / | tail -1'`); several are an argv.
    Exit code 1 when the command failed or a host was unreachable on any host.
    """
    loaded = load_inventory(inventory)
    hosts = limit_hosts(loaded.nodes, limit)
    shell = Shell.sh(cmd[0], sudo=sudo, timeout=timeout) if len(cmd) == 1 else \
        Shell.cmd(*cmd, sudo=sudo, timeout=timeout)
    with ConnectionPool(loaded.nodes, connect_options(accept_new_host_keys, transport)) as pool:
        results = fan_out(hosts, lambda h: pool.get(h).run(shell), forks)
    out = sys.stdout
    width = host_width(hosts)
    failed = 0
    for host, hr in results.items():
        name = host.ljust(width)
        if hr.error is not None:
            failed += 1
            what = "UNREACHABLE" if hr.unreachable else "FAILED"
            msg = getattr(hr.error, "message", None) or str(hr.error)
            out.write(f"{name} | {what}: {msg}\n")
            hint = getattr(hr.error, "hint", None)
            if hint:
                out.write(f"{name} | hint: {hint}\n")
            continue
        res = hr.value
        assert isinstance(res, CommandResult)
        print_exec(out, name, res.stdout)
        print_exec(out, name, res.stderr, " (stderr)")
        out.write(f"{name} | exit {res.exit_code} ({res.duration:.2f}s)\n")
        failed += 0 if res.ok else 1
    out.write(f"{len(hosts) - failed}/{len(hosts)} host(s) ok: {shlex.join(cmd)}\n")
    ctx.exit(1 if failed else 0)
