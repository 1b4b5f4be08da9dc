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


def test_consoles_never_wrap_when_not_a_terminal() -> None:
    import io
    import re
    from pathlib import Path

    from glm5cluster.cli.display import make_console

    path = "/home/operator/.glm5cluster/lab/some-long-lab-name/" + "x" * 120 + "/inventory.yaml"
    buf = io.StringIO()
    make_console(file=buf, highlight=False, markup=False).print(f"inventory: {path}")
    assert buf.getvalue() == f"inventory: {path}\n"
    # every console of the CLI is made by make_console (a plain Console wraps at 80 columns)
    cli = Path(__file__).resolve().parents[2] / "glm5cluster" / "cli"
    direct = [p.name for p in cli.glob("*.py") if p.name != "display.py"
              and re.search(r"(?<!make_)Console\(", p.read_text())]
    assert not direct, direct


def test_validate_format_json(tmp_path, example_home) -> None:  # type: ignore[no-untyped-def]
    import json
    from pathlib import Path

    from glm5cluster.cli.validate_cmd import command

    good = str(Path(__file__).resolve().parents[2] / "inventory" / "h200-bf16.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ncluster: {name: x}\nhosts: []\n")
    res = CliRunner().invoke(command, [good, str(bad), "--format", "json"])
    assert res.exit_code == 2
    data = json.loads(res.stdout)
    assert data["ok"] is False and [f["ok"] for f in data["files"]] == [True, False]
    assert data["files"][0]["hosts"] >= 1 and data["files"][0]["replicas"] >= 1
    assert data["files"][1]["problems"] and data["files"][1]["problems"][0]["file"] == str(bad)


def test_state_commands_offer_json() -> None:
    have = {name for name, cmd in _commands()
            if any(isinstance(p, click.Option) and "--format" in p.opts for p in cmd.params)}
    assert {"validate", "plan", "status", "bench", "lab status"} <= have


def test_lab_status_format_json(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from glm5cluster.cli import lab_cmd
    from glm5cluster.lab.manager import LabHost, LabInfo

    info = LabInfo("g1", "glm5lab-g1", "172.28.145.0/24",
                   [LabHost("node-1", "172.28.145.11", "glm5lab-g1-node-1", "running", "running")],
                   "/l", "/l/inventory.yaml", "/l/id", "/l/known_hosts")
    monkeypatch.setattr(lab_cmd, "ensure_engine", lambda console: object())  # the edge: docker
    monkeypatch.setattr(lab_cmd, "known_labs", lambda client: ["g1"])
    monkeypatch.setattr(lab_cmd, "status", lambda client, name: info)
    res = CliRunner().invoke(lab_cmd.command, ["status", "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["labs"][0]["hosts"][0] == {"name": "node-1", "address": "172.28.145.11",
                                          "container": "glm5lab-g1-node-1", "state": "running",
                                          "system": "running"}
    assert data["labs"][0]["inventory"] == "/l/inventory.yaml"
