"""Templates and the docker argv: content, names, and hostile values arriving as inert data."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import jinja2
import pytest
from systemd_words import exec_start_argv

from glm5cluster import render
from glm5cluster.errors import PlanError
from glm5cluster.runtime import ContainerRuntime, UnitRuntime, rank_stem
from glm5cluster.runtime.rank import rank_command, rank_unit
from glm5cluster.sglang.launcher import LAUNCHER, entry_argv

HOSTILE = "a b 'c' \"d\" ;e $(touch /tmp/pwned-glm5) `id` %h %% \\g $HOME ${X} |&<>*?!#~\tend"
HOSTILE_NL = HOSTILE + "\nsecond line\ttab"


def hostile_inventory(inv_factory, runtime="venv", kind="H200", hosts=2, repo="zai-org/GLM-5"):
    return inv_factory(
        kind, repo, hosts=hosts,
        # weights_dir may not hold ':' (docker -v), '"' or '\\' (the agent's forced command)
        model={"repo": repo, "weights_dir": "/models/" + HOSTILE.translate({ord(c): None for c in ':\t"\\'})},
        serving={
            "runtime": runtime,
            "venv_path": "/opt/venv",
            "env": {"USER_VALUE": HOSTILE, "EMPTY": ""},
            "extra_args": ["--chat-template", HOSTILE, "--dist-timeout", "3600"],
            "secrets": {"api_key_env": "GLM5_API_KEY"},
        },
    )


def pairs(inv, topo):
    return [(rep, r) for rep in topo.replicas for r in rep.ranks]


def test_systemd_exec_start_round_trips_hostile_values(inv_factory, planner):
    inv = hostile_inventory(inv_factory)
    topo = planner(inv)
    for rep, rank in pairs(inv, topo):
        unit = rank_unit(inv, topo, rep, rank)
        (line,) = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
        python = "/opt/venv/bin/python"
        assert exec_start_argv(line[len("ExecStart="):]) == render.server_argv(inv, topo, rep, rank, python)
        assert "--chat-template" in line and "Restart=no" in unit and "LimitMEMLOCK=infinity" in unit
        assert "KillSignal=SIGTERM" in unit and "TimeoutStopSec=" in unit and "LimitSTACK=" in unit
        assert f"EnvironmentFile=/etc/glm5cluster/t/r{rep.index}.env" in unit
        assert ("secrets.env" in unit) == rank.is_head


def test_systemd_quote_rejects_nothing_and_escapes_everything():
    for s in [HOSTILE_NL, "", "%", "$", "\\", '"', "'", "\x01\x7f", "é ü"]:
        assert exec_start_argv(render.systemd_command_line([s, "x"])) == [s, "x"]


def _sh_env(tmp_path: Path, text: str) -> dict[str, str]:
    f = tmp_path / "node.env"
    f.write_text(text)
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    script = f"set -a; . {shlex.quote(str(f))}; exec {shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": os.environ["PATH"]}, cwd=tmp_path)
    assert not (tmp_path / "pwned-glm5").exists() and not Path("/tmp/pwned-glm5").exists()
    return json.loads(out.stdout)


def test_env_file_through_real_sh(inv_factory, planner, tmp_path):
    inv = hostile_inventory(inv_factory)
    topo = planner(inv)
    rep = topo.replicas[0]
    text = render.render_env_file(render.env_file_vars(inv, rep, rep.ranks[0], "systemd"))
    env = _sh_env(tmp_path, text)
    assert env["USER_VALUE"] == HOSTILE and env["EMPTY"] == ""
    assert env["NCCL_SOCKET_IFNAME"] == "eth1" and env["GLOO_SOCKET_IFNAME"] == "eth1"
    assert "GLM5_API_KEY" not in env and "# secret GLM5_API_KEY" in text
    rank1 = render.render_env_file(render.env_file_vars(inv, rep, rep.ranks[1], "systemd"))
    assert "GLM5_API_KEY" not in rank1


def test_docker_env_file_is_raw_and_refuses_newlines(inv_factory, planner):
    inv = hostile_inventory(inv_factory, runtime="docker")
    topo = planner(inv)
    rep = topo.replicas[0]
    text = render.render_env_file(render.env_file_vars(inv, rep, rep.ranks[0], "docker"))
    assert f"USER_VALUE={HOSTILE}\n" in text
    with pytest.raises(PlanError) as e:  # the schema refuses newlines too; this is the backstop
        render.encode_env_line("X", "a\nb", "docker")
    assert e.value.path == "serving.env.X"
    assert render.encode_env_line("X", HOSTILE_NL, "systemd") == "X=" + shlex.quote(HOSTILE_NL)


def test_docker_argv_through_real_sh(inv_factory, planner, tmp_path):
    inv = hostile_inventory(inv_factory, runtime="docker")
    topo = planner(inv)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    (fake / "docker").chmod(0o755)
    for rep, rank in pairs(inv, topo):
        argv = rank_command(inv, topo, rep, rank)
        line = shlex.join(argv)
        assert shlex.split(line) == argv
        out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True,
                             env={"PATH": f"{fake}:{os.environ['PATH']}"}, cwd=tmp_path)
        assert json.loads(out.stdout) == argv[1:]
        assert not Path("/tmp/pwned-glm5").exists()


def test_docker_argv_shape(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=2, serving={"runtime": "docker", "shm_size": "64g"})
    topo = planner(inv)
    rep = topo.replicas[0]
    a = rank_command(inv, topo, rep, rep.ranks[1])
    s = " ".join(a)
    for part in ["--gpus all", "--network host", "--ipc host", "--shm-size 64g", "--ulimit memlock=-1",
                 "--ulimit stack=67108864", "-v /models/glm5:/models/glm5:ro", "--name glm5-t-r0",
                 "--label glm5cluster.cluster=t", "--label glm5cluster.replica=0",
                 "--label glm5cluster.rank=1", "--env-file /etc/glm5cluster/t/r0.env",
                 "lmsysorg/sglang:v0.5.23 python3 -m sglang.launch_server --model-path"]:
        assert part in s, part
    amd = inv_factory("MI300X", "zai-org/GLM-5", serving={"runtime": "docker", "sglang_version": "0.5.23", "image": "rocm/sgl-dev:x"})
    t = planner(amd)
    s = " ".join(rank_command(amd, t, t.replicas[0], t.replicas[0].ranks[0]))
    assert "--device /dev/kfd --device /dev/dri --group-add video --cap-add SYS_PTRACE" in s
    assert "--security-opt seccomp=unconfined" in s and "--gpus" not in s and "rocm/sgl-dev:x" in s
    colon = inv_factory(model={"repo": "zai-org/GLM-5-FP8", "weights_dir": "/a:b"}, serving={"runtime": "docker"})
    t = planner(colon)
    with pytest.raises(PlanError) as e:
        rank_command(colon, t, t.replicas[0], t.replicas[0].ranks[0])
    assert e.value.path == "model.weights_dir"


def test_names():
    assert UnitRuntime("/v").target(rank_stem("prod", 1)) == "glm5-prod-r1.service"
    assert ContainerRuntime("0.5.23").target(rank_stem("prod", 0)) == "glm5-prod-r0"
    assert render.secrets_file_path("prod") == "/etc/glm5cluster/prod/secrets.env"


def test_strict_undefined():
    with pytest.raises(jinja2.UndefinedError):
        render.environment().get_template("sglang.service.j2").render(v={})


def test_api_key_launcher_keeps_the_key_out_of_argv(tmp_path):
    mod = tmp_path / "sglang"
    mod.mkdir()
    (mod / "__init__.py").write_text("")
    (mod / "launch_server.py").write_text(textwrap.dedent("""
        import json, os, sys
        print(json.dumps({"argv": sys.argv[1:], "left": os.environ.get("GLM5_API_KEY")}))
    """))
    argv = entry_argv(sys.executable, "GLM5_API_KEY") + ["--port", "30000", "--x", HOSTILE]
    assert "s3cr3t" not in argv and argv[2] == LAUNCHER
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path), "GLM5_API_KEY": "s3cr3t"}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    got = json.loads(out.stdout)
    assert got == {"argv": ["--port", "30000", "--x", HOSTILE, "--api-key", "s3cr3t"], "left": None}
    env.pop("GLM5_API_KEY")
    failed = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert failed.returncode != 0 and "GLM5_API_KEY" in failed.stderr
    assert entry_argv("py") == ["py", "-m", "sglang.launch_server"]


def test_packaged_templates_are_the_top_level_ones():
    top, packaged = render.TEMPLATE_DIRS
    names = sorted(p.name for p in top.glob("*.j2"))
    assert names == ["node.env.j2", "sglang.service.j2"]
    assert all((packaged / n).read_text() == (top / n).read_text() for n in names)


def test_docker_api_key_travels_as_a_read_only_file_not_env(tmp_path, inv_factory, planner):
    """docker --env-file values land in the container's Config.Env (docker inspect); the secrets
    file is bind-mounted read-only instead and the launcher reads the key from it."""
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=2,
                      serving={"runtime": "docker", "secrets": {"api_key_env": "GLM5_API_KEY"}})
    topo = planner(inv)
    rep = topo.replicas[0]
    head = rank_command(inv, topo, rep, rep.ranks[0])
    s = " ".join(head)
    assert "--env-file /etc/glm5cluster/t/secrets.env" not in s
    assert "-v /etc/glm5cluster/t/secrets.env:/run/glm5cluster/secrets.env:ro" in s
    assert head[head.index(LAUNCHER) + 1] == "GLM5_API_KEY@/run/glm5cluster/secrets.env"
    worker = " ".join(rank_command(inv, topo, rep, rep.ranks[1]))
    assert "secrets.env" not in worker
    # the launcher reads NAME=value (docker's raw env-file line, as written for the docker runtime)
    mod = tmp_path / "sglang"
    mod.mkdir()
    (mod / "__init__.py").write_text("")
    (mod / "launch_server.py").write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    secrets = tmp_path / "secrets.env"
    secrets.write_text("OTHER=x\nGLM5_API_KEY=s3 cr=t'\"\n")
    argv = entry_argv(sys.executable, "GLM5_API_KEY", str(secrets)) + ["--port", "1"]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == ["--port", "1", "--api-key", "s3 cr=t'\""]
    secrets.write_text("OTHER=x\n")
    assert subprocess.run(argv, capture_output=True, text=True, env=env).returncode != 0
