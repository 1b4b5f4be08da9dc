"""Asking before changes: show the plan, then ask on a terminal, or refuse (exit 2) without one."""

from __future__ import annotations

import sys

import click

from glm5cluster.cli.display import Display
from glm5cluster.engine.report import RunReport


class TerminalConfirm:
    """The ``confirm`` callback of ``run_playbook`` for interactive commands.

    ``refused`` is set when changes were planned and there was no terminal to ask on: the
    command then exits 2 (bad input: it needs --yes) after the plan has been shown.
    """

    def __init__(self, display: Display, question: str = "Apply these changes?",
                 what: str = "changes are planned",
                 hint: str = "review the plan above and re-run with --yes to apply it "
                             "(or --check to only show it)") -> None:
        self.display = display
        self.question = question
        self.what = what
        self.hint = hint
        self.refused = False

    def __call__(self, plan: RunReport) -> bool:
        self.display.show_plan(plan)
        if not sys.stdin.isatty():
            self.refused = True
            click.echo(f"error: {self.what} and there is no terminal to confirm them on", err=True)
            click.echo(f"hint: {self.hint}", err=True)
            return False
        self.display.close()  # the live display would draw over the prompt and its [y/N]
        try:
            if self.display.out is sys.stderr:  # --format json: stdout is the object, the prompt goes to stderr
                return click.confirm(self.question, default=False, err=True)
            return click.confirm(self.question, default=False)
        except click.Abort:  # Ctrl-C (or EOF) at the prompt: nothing was changed
            raise KeyboardInterrupt from None
