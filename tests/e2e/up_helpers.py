"""Helpers for the `glm5cluster up` lab tests: provision SGLang (the simulator wheel in the venv)
and small synthetic GLM-5 weights with a manifest stamp on lab hosts, write test inventories,
and run the real CLI.

Provisioning stands in for the GPU-stack / SGLang-runtime / weights steps (other work items) so
these tests exercise preflight, launch, readiness and smoke through `glm5cluster up` with a
playbook of exactly those steps (`tests/e2e/data/up-serve.yaml`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parent / "data" / "up-serve.yaml"
WEIGHTS = "/srv/models/GLM-5"
VENV = "/opt/glm5cluster/venv"
COMMIT = hashlib.sha1(b"glm5cluster-test-weights").hexdigest()


def _tar_dir(src: Path, prefix: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(src), arcname=prefix.lstrip("/"))
    return buf.getvalue()


def build_assets(tmp: Path) -> tuple[Path, Path]:
    """(the simulator wheel, a synthetic GLM-5 repository with its manifest stamp)."""
    from glm5cluster.lab.sim.hub.repo import generate_repo
    from glm5cluster.lab.sim.sglang_sim.build import build_wheel

    wheel = Path(build_wheel(str(tmp / "wheel")))
    repo = tmp / "GLM-5"
    generate_repo(str(repo), shards=4, shard_bytes=64 * 1024, repo_id="zai-org/GLM-5")
    files = [{"path": p.name, "size": p.stat().st_size} for p in sorted(repo.iterdir()) if p.is_file()]
    (repo / ".glm5cluster-manifest.json").write_text(json.dumps(
        {"repo": "zai-org/GLM-5", "commit": COMMIT, "files": files, "tool": "glm5cluster"}))
    return wheel, repo


def provision(lab: Any, wheel: Path, repo: Path) -> None:
    """SGLang (simulator) in the venv and the weights at WEIGHTS, on every host of the lab."""
    for host in lab.hosts:
        c = lab.container(host)
        c.put_archive("/tmp", _tar_dir(wheel, wheel.name))
        c.put_archive("/", _tar_dir(repo, WEIGHTS))
        rc, out = lab.exec(host, f"test -x {VENV}/bin/python || python3 -m venv {VENV}; "
                                 f"{VENV}/bin/pip install -q --no-index --force-reinstall /tmp/{wheel.name}")
        assert rc == 0, out


def inventory(lab: Any, tmp: Path, name: str, env: dict[str, str] | None = None,
              **serving: Any) -> Path:
    data = yaml.safe_load(lab.inventory.read_text())
    data["model"]["source"] = {"kind": "path"}
    data["model"]["weights_dir"] = WEIGHTS
    s = data.setdefault("serving", {})
    s.update(serving)
    s["env"] = {"SGLANG_SIM_LOAD_SECONDS": "1", "SGLANG_SIM_RENDEZVOUS_TIMEOUT": "30", **(env or {})}
    s["readiness_timeout"] = 120
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def up(inv: Path, *extra: str, timeout: float = 300) -> tuple[int, str, float]:
    """Run `glm5cluster up INV --yes` (the real CLI); (exit code, output, seconds)."""
    argv = [sys.executable, "-m", "glm5cluster", "up", str(inv), "--yes", "--playbook", str(PLAYBOOK), *extra]
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,  # noqa: S603
                       env={**os.environ, "COLUMNS": "200"})
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def invocation(lab: Any, host: str, unit: str) -> str:
    rc, out = lab.exec(host, f"systemctl show -p InvocationID --value {unit}")
    return out.strip()
