"""down's pure parts: the footprint of a cluster (never another's), the order of a teardown
(heads drained first), idempotence, and purge guards; with the in-package FakeConnection."""

from __future__ import annotations

from pathlib import Path

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.playbook import Playbook, Step
from glm5cluster.engine.procedures.teardown import (
    Teardown,
    TeardownParams,
    purge_script,
    purge_targets,
)
from glm5cluster.engine.report import Status
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.model.inventory import Runtime
from glm5cluster.model.loader import load_inventory
from glm5cluster.runtime.survey import parse_survey, survey_script

INV = """\
version: 1
cluster: {name: lab, gpu: {kind: H200, count: 8}}
hosts:
- {name: node-1, address: 10.0.0.11}
- {name: node-2, address: 10.0.0.12}
model: {repo: zai-org/GLM-5, weights_dir: /srv/models/GLM-5}
"""

LISTING = (
    "unit\tglm5-lab-r0.service\tactive\tGLM-5 SGLang lab replica 0 rank {rank}/2\n"
    "unit\tglm5-lab-r1-r0.service\tactive\tGLM-5 SGLang lab-r1 replica 0 rank 0/2\n"  # cluster lab-r1
    "container\tglm5-lab-r0\trunning\t{rank}\tlab\n"
    "container\tglm5-other-r0\trunning\t0\tother\n"
    "dir\t/etc/glm5cluster/lab\n"
)


def test_survey_keeps_only_this_clusters_names() -> None:
    fp = parse_survey("lab", LISTING.format(rank=1) + "unit\tglm5-lab-router.service\tactive\tGLM-5 router lab\n")
    assert [i.name for i in fp.units] == ["glm5-lab-r0.service", "glm5-lab-router.service"]
    assert [(i.replica, i.rank) for i in fp.units] == [(0, 1), (None, None)]
    assert [(i.name, i.rank) for i in fp.containers] == [("glm5-lab-r0", 1)]
    assert fp.config_dir == "/etc/glm5cluster/lab" and not fp.empty
    assert parse_survey("lab", "").empty
    script = survey_script("lab", "/etc/glm5cluster/lab")
    assert "glm5-lab-*.service" in script and "name=^/?glm5-lab-" in script  # one docker ps, by name


class Host:
    """A host that holds this cluster's unit until the removal script ran."""

    def __init__(self, name: str, rank: int, order: list[str]) -> None:
        self.name, self.rank, self.order, self.removed = name, rank, order, False

    def __call__(self, cmd: Shell) -> CommandResult:
        line = cmd.command_line()
        if "systemctl list-units" in line:
            out = "" if self.removed else (
                f"unit\tglm5-lab-r0.service\tactive\tGLM-5 SGLang lab replica 0 rank {self.rank}/2\n"
                "dir\t/etc/glm5cluster/lab\n")
            return CommandResult("", 0, out)
        if "_term 300" in line:
            self.order.append(f"drain {self.name}")
        elif "daemon-reload" in line:
            self.order.append(f"remove {self.name}")
            assert "glm5-lab-r1-r0" not in line and "other" not in line
            self.removed = True
        return CommandResult("", 0)


def _down(tmp_path: Path, hosts: dict[str, Host], check: bool = False, purge: bool = False):  # type: ignore[no-untyped-def]
    inv_file = tmp_path / "inv.yaml"
    inv_file.write_text(INV)
    loaded = load_inventory(inv_file)
    conns = {n: FakeConnection(n, responder=h) for n, h in hosts.items()}
    pb = Playbook("down", "-", (Step(0, "down", "teardown", Teardown(), TeardownParams(purge=purge)),))
    with ConnectionPool(loaded.nodes, factory=lambda node: conns[node.name]) as pool:
        return run_playbook(pb, loaded.inventory, loaded.nodes, pool, RunOptions(check=check)), conns


def test_head_drains_before_workers_stop_and_a_second_down_does_nothing(tmp_path: Path) -> None:
    order: list[str] = []
    hosts = {"node-1": Host("node-1", 0, order), "node-2": Host("node-2", 1, order)}
    report, _ = _down(tmp_path, hosts, check=True)
    assert report.changes == 2 and order == []  # --check changes nothing
    report, _ = _down(tmp_path, hosts)
    assert report.exit_code == 0 and report.changes == 2
    assert order[0] == "drain node-1" and "drain node-2" not in order
    assert order.index("drain node-1") < order.index("remove node-2")
    again, _ = _down(tmp_path, hosts)
    assert again.changes == 0 and all(r.status is Status.OK for r in again.steps[0].results.values())


def test_purge_keeps_what_another_cluster_uses() -> None:
    script = purge_script(["/srv/models/GLM-5", "/opt/glm5cluster/venv"], ["lmsysorg/sglang:v0.5.23"])
    assert 'u=$(in_use "$p"); [ -n "$u" ] || u=$(in_use "$r")' in script  # the path as written and resolved
    assert "purge_path /srv/models/GLM-5" in script and "docker rmi lmsysorg/sglang:v0.5.23" in script
    assert "kept" in script


def _purge_here(paths: list[str], protected: set[str]) -> str:
    import subprocess

    script = purge_script(paths, [], protected=frozenset(protected))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, timeout=60).stdout


def test_purge_resolves_on_the_host_and_refuses_system_dirs(tmp_path: Path) -> None:
    """A weights path that is (or leads through) a symlink to a protected directory, or with
    ``..`` that resolves to one, is refused and nothing there is touched."""
    sysdir = tmp_path / "sysdir"
    (sysdir / "keep").mkdir(parents=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "GLM-5").symlink_to(sysdir)
    dotted = f"{tmp_path}/models/x/../../sysdir"
    (tmp_path / "models" / "x").mkdir()
    out = _purge_here([f"{tmp_path}/models/GLM-5", dotted], {str(sysdir)})
    assert out.count("refusing to purge") == 2 and f"system directory {sysdir}" in out, out
    assert (sysdir / "keep").is_dir() and (tmp_path / "models" / "GLM-5").is_symlink()


def test_purge_removes_the_resolved_directory_and_the_link(tmp_path: Path) -> None:
    big = tmp_path / "nvme" / "GLM-5"
    (big / "sub").mkdir(parents=True)
    (big / "sub" / "f").write_text("x")
    plain = tmp_path / "srv" / "venv"
    plain.mkdir(parents=True)
    link = tmp_path / "srv" / "GLM-5"
    link.symlink_to(big)
    out = _purge_here([str(link), str(plain), str(tmp_path / "absent")], set())
    assert f"removed {link}" in out and f"removed {plain}" in out, out
    assert not big.exists() and not link.is_symlink() and not plain.exists() and (tmp_path / "nvme").is_dir()


def test_purge_targets_refuse_dotdot_relative_and_system_paths() -> None:
    from types import SimpleNamespace

    def targets(wdir: str) -> tuple[list[str], list[str]]:
        inv = SimpleNamespace(model=SimpleNamespace(weights_dir=wdir),
                              serving=SimpleNamespace(runtime=Runtime.VENV, venv_path="/opt/glm5cluster/venv"))
        keep, _, refused = purge_targets(SimpleNamespace(inventory=inv, topology=None))  # type: ignore[arg-type]
        return keep, refused

    assert targets("/srv/models/GLM-5") == (["/srv/models/GLM-5", "/opt/glm5cluster/venv"], [])
    for bad in ("/srv/models/../../etc", "/srv/./x/..", "srv/models"):
        keep, refused = targets(bad)
        assert keep == ["/opt/glm5cluster/venv"] and "not a plain absolute path" in refused[0], (bad, refused)
    assert "system directory" in targets("/usr//")[1][0]


def test_footprint_uses_a_private_temp_file_for_docker_errors(tmp_path: Path) -> None:
    import os
    import subprocess

    script = survey_script("lab", "/etc/glm5cluster/lab")
    assert "/tmp/" not in script  # no fixed, guessable names (a symlink planted there would be followed)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    (bin_dir / "docker").chmod(0o755)
    (bin_dir / "systemctl").write_text("#!/bin/sh\ntrue\n")
    (bin_dir / "systemctl").chmod(0o755)
    tmpdir = tmp_path / "t"
    tmpdir.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmpdir)}
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, check=True, timeout=30).stdout
    assert "docker-error\tCannot connect to the Docker daemon" in out
    assert list(tmpdir.iterdir()) == []  # cleaned up


def test_preflight_listener_has_no_fixed_temp_path() -> None:
    from pathlib import Path as P

    import glm5cluster.engine.procedures.preflight as pf

    assert "/tmp/" not in P(pf.__file__).read_text()
