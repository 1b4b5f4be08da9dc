"""The `glm5cluster` console script. Each subcommand lives in its own module under cli/.

Errors are written for people (architecture rule 10): no traceback unless --debug;
exit codes 0 success, 1 some hosts failed, 2 bad input.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from glm5cluster import __version__
from glm5cluster.errors import GlmError, InputProblems

# Every subcommand module exposes `command` (a click.Command or click.Group).
SUBCOMMANDS = [
    "validate",
    "schema",
    "plan",
    "lab",
    "run",
    "exec",
    "up",
    "status",
    "logs",
    "down",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="glm5cluster")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """From a YAML inventory of GPU servers to a serving, verified GLM-5 on SGLang."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    for name in SUBCOMMANDS:
        mod_name = f"glm5cluster.cli.{name.replace('-', '_')}_cmd"
        if importlib.util.find_spec(mod_name) is None:
            continue
        mod = importlib.import_module(mod_name)
        cli.add_command(mod.command, name=name)


def main(argv: list[str] | None = None) -> int:
    _register()
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
