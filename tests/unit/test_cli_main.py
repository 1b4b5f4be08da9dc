from __future__ import annotations

import importlib.util

from glm5cluster.cli.main import SUBCOMMANDS, main


def test_every_listed_subcommand_has_a_module() -> None:
    for name in SUBCOMMANDS:
        assert importlib.util.find_spec(f"glm5cluster.cli.{name}_cmd") is not None, name


def test_unknown_subcommand_is_bad_input(capsys: object) -> None:
    assert main(["no-such-command"]) == 2


def test_help_lists_every_subcommand(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
