"""status's probe command: the API key reaches curl on stdin only; the output splits back into
a rank reading (sections as the host prints them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.commands import CommandResult, Secret
from glm5cluster.engine.procedures.status import curl_config, parse_rank, rank_command
from glm5cluster.facts.sections import section_script

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
    c = _checked(tmp_path)
    rep = c.topology.replicas[0]
    key = 's3cr"t\\key'
    head = rank_command(c.loaded.inventory, rep, rep.ranks[0], key)
    assert isinstance(head.stdin, Secret) and key not in head.command_line() and key not in head.display()
    assert head.stdin.value == 'header = "Authorization: Bearer s3cr\\"t\\\\key"\n' == curl_config(key)
    assert "curl -sS -m 5 -K -" in head.command_line() and "/v1/models" in head.command_line()
    worker = rank_command(c.loaded.inventory, rep, rep.ranks[1], key)
    assert worker.stdin == "" and "curl" not in worker.command_line()


def _run(parts: list[tuple[str, str]]) -> CommandResult:
    script = section_script([(name, "cat <<'EOF'\n" + text + "EOF") for name, text in parts])
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    return CommandResult("status", 0, out.stdout, out.stderr)


def _unit_state(show: str) -> str:
    """What ``UnitRuntime.state_script`` prints: systemctl show, the clock, the launch stamp."""
    return show + "@@glm5cluster:clock@@\n" + (DATA / "clock.txt").read_text() + "@@glm5cluster:stamp@@\n"


NO_CONTAINER = "@@glm5cluster:container@@\nabsent\nnow=1795989162.3\n"
CONTAINER = ("@@glm5cluster:container@@\n" + "c0ffee" * 10 + "\nd1\n"
             + (DATA / "docker-inspect-state_running.json").read_text() + "now=1795989162.3\n")


def _checked(tmp_path: Path, inv: str = INV):  # type: ignore[no-untyped-def]
    f = tmp_path / "inv.yaml"
    f.write_text(inv)
    return load_and_check(f)


def test_parse_rank_from_sections(tmp_path: Path) -> None:
    c = _checked(tmp_path)
    rep = c.topology.replicas[0]
    models = (DATA / "v1_models_deepseek-r1_node0.json").read_text()
    res = _run([("state-unit", _unit_state((DATA / "systemctl-show_active.txt").read_text())),
                ("log-unit", "The server is fired up and ready to roll!\n"),
                ("state-container", NO_CONTAINER), ("log-container", ""),
                ("survey", "@@glm5cluster:survey@@\nunit\tglm5-lab-r0.service\tactive\tGLM-5 SGLang lab replica 0 "
                 "rank 0/2\ndir\t/etc/glm5cluster/lab\n"),
                ("health", "\n200\n"), ("models", models + "\n200\n"),
                ("server-info", '{"version": "0.5.23"}\n200\n')])
    r = parse_rank(res, c.loaded.inventory, rep, is_head=True)
    assert r.state.state == "active" and r.state.since is not None and r.state.target == "glm5-lab-r0.service"
    assert r.head is not None and r.head.healthy and r.head.version == "0.5.23"
    assert r.head.model_ids == ("/app/models/Deepseek-R1/",)
    assert r.log == ("The server is fired up and ready to roll!",)
    assert r.note == "" and r.others == ()


def test_a_container_left_by_the_docker_runtime_is_found_after_switching_to_venv(tmp_path: Path) -> None:
    c = _checked(tmp_path)
    rep = c.topology.replicas[0]
    res = _run([("state-unit", _unit_state((DATA / "systemctl-show_not-found.txt").read_text())),
                ("log-unit", ""), ("state-container", CONTAINER), ("log-container", "serving\n"),
                ("survey", "@@glm5cluster:survey@@\ncontainer\tglm5-lab-r0\trunning\t1\tlab\t" + "c0ffee" * 10
                 + "\nunit\tglm5-lab-r1.service\tactive\tGLM-5 SGLang lab replica 1 rank 0/1\n")])
    r = parse_rank(res, c.loaded.inventory, rep, is_head=False)
    assert r.state.up and r.state.kind == "container" and r.state.target == "glm5-lab-r0"
    assert r.log == ("serving",) and "started by the docker runtime; the inventory says venv" in r.note
    assert [i.name for i in r.others] == ["glm5-lab-r1.service"]  # an earlier topology's replica 1


IMAGE_ID = "sha256:" + "ab12" * 16
DIGEST = "lmsysorg/sglang@sha256:" + "cd34" * 16


def test_status_names_what_each_rank_runs(tmp_path: Path) -> None:
    c = _checked(tmp_path)
    rep = c.topology.replicas[0]
    # venv: the SGLang version in the venv; docker: the running image's registry digest and id
    res = _run([("state-unit", _unit_state((DATA / "systemctl-show_active.txt").read_text())),
                ("log-unit", ""), ("runs-unit", "0.5.23\n"),
                ("state-container", NO_CONTAINER), ("log-container", ""), ("runs-container", "")])
    assert parse_rank(res, c.loaded.inventory, rep, is_head=False).runs == "sglang 0.5.23"
    res = _run([("state-unit", _unit_state((DATA / "systemctl-show_not-found.txt").read_text())),
                ("log-unit", ""), ("runs-unit", ""), ("state-container", CONTAINER), ("log-container", ""),
                ("runs-container", f"image={IMAGE_ID}\ndigest={DIGEST}\n")])
    assert parse_rank(res, c.loaded.inventory, rep, is_head=False).runs == f"{DIGEST} (image {IMAGE_ID[:19]})"


def test_the_container_probe_reads_the_running_image_then_its_digests(tmp_path: Path) -> None:
    from glm5cluster.runtime import ContainerRuntime

    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\necho \"$*\" >> \"$0.calls\"\n"
                      f"case \"$1\" in inspect) echo {IMAGE_ID} ;; image) printf '{DIGEST}\\n\\n' ;; esac\n")
    docker.chmod(0o755)
    rt = ContainerRuntime("0.5.23")
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", rt.running_script("glm5-lab-r0")], env=env, capture_output=True, text=True).stdout
    assert rt.parse_running(out) == f"{DIGEST} (image {IMAGE_ID[:19]})"
    calls = (tmp_path / "docker.calls").read_text().splitlines()
    assert calls == ["inspect -f {{.Image}} glm5-lab-r0", f"image inspect -f {{{{range .RepoDigests}}}}{{{{println .}}}}"
                     f"{{{{end}}}} {IMAGE_ID}"]
    # an image loaded from an archive has no registry digest: its id
    assert rt.parse_running(f"image={IMAGE_ID}\n") == f"image {IMAGE_ID[:19]}"
    assert rt.parse_running("") == ""  # no such container


def test_status_prints_and_reports_what_each_rank_runs(tmp_path: Path) -> None:
    import io

    from glm5cluster.cli.status_cmd import print_text, status_json
    from glm5cluster.engine.procedures.status import ClusterStatus, RankStatus, ReplicaStatus
    from glm5cluster.facts.rank_state import RankState
    from glm5cluster.facts.replica import RankView, judge

    view = RankView(0, "node-1", RankState("active", "running", target="glm5-lab-r0"))
    rs = RankStatus(view, "glm5-lab-r0", runs=f"{DIGEST} (image {IMAGE_ID[:19]})")
    rep = ReplicaStatus(0, "http://10.0.0.11:30000", (rs,), None, judge([view], None, "m"), "m", None, None)
    st = ClusterStatus("lab", "docker", (rep,))
    out = io.StringIO()
    print_text(st, "inv.yaml", out)
    line = next(ln for ln in out.getvalue().splitlines() if ln.strip().startswith("rank 0"))
    assert "glm5-lab-r0  active (running)" in line and line.endswith(f"  {DIGEST} (image {IMAGE_ID[:19]})")
    assert status_json(st)["replicas"][0]["ranks"][0]["runs"] == f"{DIGEST} (image {IMAGE_ID[:19]})"
