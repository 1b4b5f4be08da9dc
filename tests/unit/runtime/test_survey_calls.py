"""The survey costs one ``systemctl show`` and one ``docker ps`` per host, however many services
the cluster has there (it ran 2 ``systemctl show`` per unit, 2 ``docker ps`` and a ``docker
inspect`` per container: 11 calls for 3 units and 2 containers, against 3 now).

The real script runs under ``sh`` against recording stand-ins of ``systemctl`` and ``docker``
(their output shaped like systemd 252's ``show`` blocks and docker's ``ps --format`` lines)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from glm5cluster.runtime.survey import container_state, parse_survey, survey_script

UNITS = {"glm5-zq-r0.service": ("active", "GLM-5 SGLang zq replica 0 rank 1/2"),
         "glm5-zq-r1.service": ("failed", "GLM-5 SGLang zq replica 1 rank 0/2"),
         "glm5-zq-router.service": ("active", "glm5cluster router of cluster zq (sglang-router 0.3.2)")}
CONTAINERS = ["glm5-zq-r2\tUp 3 minutes\t0\tzq\t" + "a" * 64,
              "glm5-zq-r3\tExited (137) 2 hours ago\t1\tzq\t" + "b" * 64]

SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$CALLS"
case "$1" in
  list-units) printf '%s loaded active running x\\n' {units} ;;
  show) shift; first=1
    for a in "$@"; do case "$a" in glm5-*)
      [ $first = 1 ] || echo; first=0
      case "$a" in {cases} esac ;; esac; done ;;
esac
"""
DOCKER = """#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$1" in ps) printf '%s\\n' {lines} ;; esac
"""


def _stubs(tmp: Path) -> dict[str, str]:
    cases = " ".join(f"{u}) printf 'Id={u}\\nActiveState={st}\\nDescription={d}\\n' ;;" for u, (st, d) in UNITS.items())
    (tmp / "systemctl").write_text(SYSTEMCTL.format(units=" ".join(UNITS), cases=cases))
    (tmp / "docker").write_text(DOCKER.format(lines=" ".join(f"'{c}'" for c in CONTAINERS)))
    for f in ("systemctl", "docker"):
        (tmp / f).chmod(0o755)
    return {**os.environ, "PATH": f"{tmp}:{os.environ['PATH']}", "CALLS": str(tmp / "calls")}


def test_one_show_and_one_ps_per_host_and_everything_found(tmp_path: Path) -> None:
    env = _stubs(tmp_path)
    out = subprocess.run(["sh", "-c", survey_script("zq", str(tmp_path / "cfg"))], env=env,
                         capture_output=True, text=True, check=True).stdout
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[:2] for c in calls] == [["systemctl", "list-units"], ["systemctl", "show"], ["docker", "ps"]]
    found = parse_survey("zq", out)
    assert [(i.name, i.state, i.replica, i.rank) for i in found.units] == [
        ("glm5-zq-r0.service", "active", 0, 1), ("glm5-zq-r1.service", "failed", 1, 0),
        ("glm5-zq-router.service", "active", None, None)]
    assert [(i.name, i.state, i.replica, i.rank, i.identity) for i in found.containers] == [
        ("glm5-zq-r2", "running", 2, 0, "a" * 64), ("glm5-zq-r3", "exited", 3, 1, "b" * 64)]
    assert found.docker_error == "" and found.config_dir is None
    assert found.owner_of(f"0::/system.slice/docker-{'a' * 64}.scope") is not None


def test_docker_states_from_the_status_column() -> None:
    assert [container_state(s) for s in ("Up 2 minutes", "Up 1 hour (Paused)", "Exited (0) 3 minutes ago",
                                         "Created", "Restarting (1) 5 seconds ago", "Dead",
                                         "Removal In Progress", "running")] == [
        "running", "paused", "exited", "created", "restarting", "dead", "removing", "running"]


def test_a_docker_error_is_reported(tmp_path: Path) -> None:
    env = _stubs(tmp_path)
    (tmp_path / "docker").write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    out = subprocess.run(["sh", "-c", survey_script("zq", "/nonexistent")], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert parse_survey("zq", out).docker_error.startswith("Cannot connect to the Docker daemon")
