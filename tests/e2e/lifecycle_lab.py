"""Bring a cluster up on lab hosts without `glm5cluster up` (for the lifecycle tests): the SGLang
simulator wheel into a venv, a synthetic GLM-5 directory, and each rank's env file and unit
exactly as ``glm5cluster.render`` renders them, started head first over ``docker exec``.

Replace with `glm5cluster up INV --yes` once the whole up playbook runs in the lab.
"""

from __future__ import annotations

import io
import shlex
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.lab.sim.hub.repo import generate_repo
from glm5cluster.lab.sim.sglang_sim.build import build_wheel
from glm5cluster.model.inventory import Runtime
from glm5cluster.render import (
    CONFIG_DIR,
    default_dialect,
    docker_run_argv,
    env_file_path,
    env_file_vars,
    render_env_file,
    render_unit,
    unit_name,
    unit_vars,
)

WHEEL_DEST = "/tmp/glm5-sim-wheel"  # noqa: S108 - inside the lab host


def _tar_dir(src: Path, arcroot: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(str(src), arcname=arcroot)
    return buf.getvalue()


def _must(lab: Any, host: str, cmd: str) -> str:
    rc, out = lab.exec(host, cmd)
    assert rc == 0, f"{host}: {cmd}: exit {rc}: {out[-2000:]}"
    return str(out)


def install_sim(lab: Any, venv: str = "/opt/glm5cluster/venv") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(build_wheel(tmp))
        data = _tar_dir(wheel.parent, WHEEL_DEST.lstrip("/"))
        for host in lab.hosts:
            lab.container(host).put_archive("/", data)
            _must(lab, host, f"[ -x {venv}/bin/python ] || python3 -m venv {venv}; "
                             f"{venv}/bin/pip install -q --no-index --force-reinstall {WHEEL_DEST}/{wheel.name}")


def stage_model(lab: Any, weights_dir: str = "/srv/models/GLM-5") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = generate_repo(str(Path(tmp) / "m"), shards=2, shard_bytes=64 * 1024)
        data = _tar_dir(Path(repo), weights_dir.lstrip("/"))
        for host in lab.hosts:
            lab.container(host).put_archive("/", data)


def write_inventory(lab: Any, dest: Path, cluster: str, http_port: int, dist_port: int,
                    env: dict[str, str] | None = None, docker_image: str | None = None) -> Path:
    """The lab's inventory renamed and moved to other ports; ``docker_image``: docker runtime."""
    doc = yaml.safe_load(lab.inventory.read_text())
    doc["cluster"]["name"] = cluster
    serving = doc.setdefault("serving", {})
    if docker_image:
        serving["runtime"] = "docker"
        serving["image"] = docker_image
        env = {"SGLANG_SIM_SKIP_GPU_CHECK": "1", **(env or {})}  # no nvidia-smi inside the image
    serving["http_port"] = http_port
    serving["dist_init_port"] = dist_port
    serving["env"] = {"SGLANG_SIM_LOAD_SECONDS": "1", "SGLANG_SIM_WARMUP_SECONDS": "1", **(env or {})}
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def launch(lab: Any, inventory: Path) -> None:
    """Write every rank's env file (0600) and unit (venv) and start it, heads first; docker
    runtime: ``docker run`` as render.py builds it (without ``--gpus`` and the memlock ulimit, which lab hosts cannot grant)."""
    checked = load_and_check(inventory)
    inv, topo = checked.loaded.inventory, checked.topology
    cluster = inv.cluster.name
    order: list[tuple[str, str]] = []
    for rep in topo.replicas:
        for rank in rep.ranks:
            host = rank.node.name
            env = render_env_file(env_file_vars(inv, rep, rank, default_dialect(inv)))
            files = {env_file_path(cluster, rep.index): (env, 0o600)}
            if inv.serving.runtime is Runtime.DOCKER:
                # no GPU runtime, and no memlock raise allowed, inside lab hosts
                argv = docker_run_argv(inv, topo, rep, rank)
                for flag, value in (("--gpus", "all"), ("--ulimit", "memlock=-1")):
                    i = next(i for i, a in enumerate(argv) if a == flag and argv[i + 1] == value)
                    del argv[i:i + 2]
                _must(lab, host, f"docker pull -q {inv.serving.image} >/dev/null")
                start = f"docker rm -f {argv[argv.index('--name') + 1]} >/dev/null 2>&1; {shlex.join(argv)}"
            else:
                name = unit_name(cluster, rep.index)
                files[f"/etc/systemd/system/{name}"] = (render_unit(unit_vars(inv, topo, rep, rank)), 0o644)
                start = f"systemctl daemon-reload; systemctl reset-failed {name} 2>/dev/null; systemctl start {name}"
            _must(lab, host, f"install -d -m 0700 {CONFIG_DIR}/{cluster}")
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tf:
                for path, (text, mode) in files.items():
                    info = tarfile.TarInfo(path.lstrip("/"))
                    info.size, info.mode = len(text.encode()), mode
                    tf.addfile(info, io.BytesIO(text.encode()))
            lab.container(host).put_archive("/", buf.getvalue())
            order.append((host, start))
    for host, start in order:  # heads come first in each replica's ranks
        _must(lab, host, start)
