"""status's probe command: the API key reaches curl on stdin only; the output splits back into
a rank reading (sections as the host prints them)."""

from __future__ import annotations

from pathlib import Path

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.commands import CommandResult, Secret
from glm5cluster.engine.procedures.status import curl_config, parse_rank, rank_command
from glm5cluster.facts.sections import section_script
from glm5cluster.model.inventory import Runtime

INV = """\
version: 1
cluster: {name: lab, gpu: {kind: H200, count: 8}}
hosts:
- {name: node-1, address: 10.0.0.11}
- {name: node-2, address: 10.0.0.12}
model: {repo: zai-org/GLM-5, weights_dir: /srv/models/GLM-5}
serving: {secrets: {api_key_env: GLM5_KEY}}
"""
DATA = Path(__file__).parents[1] / "facts" / "replica"


def test_api_key_only_on_stdin(tmp_path: Path) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text(INV)
    c = load_and_check(f)
    rep = c.topology.replicas[0]
    key = 's3cr"t\\key'
    head = rank_command(c.loaded.inventory, rep, rep.ranks[0], key)
    assert isinstance(head.stdin, Secret) and key not in head.command_line() and key not in head.display()
    assert head.stdin.value == 'header = "Authorization: Bearer s3cr\\"t\\\\key"\n' == curl_config(key)
    assert "curl -sS -m 5 -K -" in head.command_line() and "/v1/models" in head.command_line()
    worker = rank_command(c.loaded.inventory, rep, rep.ranks[1], key)
    assert worker.stdin == "" and "curl" not in worker.command_line()


def test_parse_rank_from_sections() -> None:
    def part(name: str, text: str) -> tuple[str, str]:
        return name, "cat <<'EOF'\n" + text + "EOF"

    models = (DATA / "v1_models_deepseek-r1_node0.json").read_text()
    script = section_script([
        part("clock", (DATA / "clock.txt").read_text()),
        part("unit", (DATA / "systemctl-show_active.txt").read_text()),
        part("log", "The server is fired up and ready to roll!\n"),
        part("health", "\n200\n"), part("models", models + "\n200\n"),
        part("server-info", '{"version": "0.5.23"}\n200\n')])
    import subprocess

    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    r = parse_rank(CommandResult("status", 0, out.stdout, out.stderr), Runtime.VENV, is_head=True)
    assert r.state.state == "active" and r.state.since is not None
    assert r.head is not None and r.head.healthy and r.head.version == "0.5.23"
    assert r.head.model_ids == ("/app/models/Deepseek-R1/",)
    assert r.log == ("The server is fired up and ready to roll!",)
