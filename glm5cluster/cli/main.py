"""The `glm5cluster` console script. Each subcommand lives in its own module under cli/.

Errors are written for people (architecture rule 10): no traceback unless --debug;
exit codes 0 success, 1 some hosts failed, 2 bad input.
"""

from __future__ import annotations

import importlib
import sys

import click

from glm5cluster import __version__
from glm5cluster.errors import GlmError, InputProblems

# Every subcommand module exposes `command` (a click.Command or click.Group).
SUBCOMMANDS = [
    "validate",
    "schema",
    "inventory",
    "plan",
    "lab",
    "run",
    "exec",
    "up",
    "status",
    "logs",
    "down",
    "rollout",
    "bench",
    "preflight",
]


class _LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs (or help lists it), so a
    command pays only for its own imports (the lab's docker SDK costs ~0.4 s of start-up)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        mod = importlib.import_module(f"glm5cluster.cli.{cmd_name.replace('-', '_')}_cmd")
        command: click.Command = mod.command
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="glm5cluster")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """From a YAML inventory of GPU servers to a serving, verified GLM-5 on SGLang."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="glm5cluster", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return 2
    except InputProblems as e:
        for p in e.problems:
            click.echo(f"error: {p}", err=True)
        return 2
    except GlmError as e:
        if debug:
            raise
        click.echo(f"error: {e.message}", err=True)
        if e.hint:
            click.echo(f"hint: {e.hint}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
