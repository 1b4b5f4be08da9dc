"""Every option of every command says what it does, and the lab takes GPU kinds spelled as the
inventory spells them (one spelling everywhere)."""

from __future__ import annotations

import importlib

import click
import pytest
from click.testing import CliRunner

from glm5cluster.cli.main import SUBCOMMANDS
from glm5cluster.errors import InputError
from glm5cluster.model.inventory import GpuKind


def _commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []

    def walk(name: str, cmd: click.Command) -> None:
        out.append((name, cmd))
        if isinstance(cmd, click.Group):
            for sub, c in cmd.commands.items():
                walk(f"{name} {sub}", c)

    for name in SUBCOMMANDS:
        mod = importlib.import_module(f"glm5cluster.cli.{name.replace('-', '_')}_cmd")
        walk(name, mod.command)
    return out


def test_every_visible_option_has_help() -> None:
    missing = [f"{name} {opt.opts[0]}" for name, cmd in _commands() for opt in cmd.params
               if isinstance(opt, click.Option) and not opt.hidden and not opt.help]
    assert not missing, missing


def test_lab_gpu_kinds_are_the_inventorys() -> None:
    from glm5cluster.cli.lab_cmd import command
    from glm5cluster.lab.manager import parse_overrides

    res = CliRunner().invoke(command, ["up", "--gpu", "h200", "--name", "x"])
    assert res.exit_code == 2 and "'h200' is not one of" in res.output
    with pytest.raises(InputError):
        parse_overrides(["node-1:gpu=h200"], 1)
    assert parse_overrides(["node-1:gpu=H200"], 1) == {"node-1": {"gpu": "H200"}}
    up = dict(_commands())["lab up"]
    gpu = next(p for p in up.params if p.name == "gpu")
    assert isinstance(gpu.type, click.Choice) and list(gpu.type.choices) == [k.value for k in GpuKind]


def test_shell_completion_as_the_readme_documents() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "_GLM5CLUSTER_COMPLETE": "bash_complete", "COMP_WORDS": "glm5cluster lab up --g",
           "COMP_CWORD": "3"}
    code = "import sys; from glm5cluster.cli.main import main; sys.exit(main())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "plain,--gpu\n" in out.stdout and "plain,--gpus-per-node" in out.stdout, out
