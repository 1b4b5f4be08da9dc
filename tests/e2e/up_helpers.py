"""Helpers for the `glm5cluster up` lab tests: a lab with its mirror (apt stand-ins, registry,
package index, model hub with small shards), inventories derived from the lab's own (cluster
name, ports, runtime, fault injection), and the real CLI (`up`, `status`, `logs`, `down`).

Every cluster is brought up by the real `glm5cluster up INV --yes` with ``playbooks/up.yaml``:
SGLang from the lab package index (venv) or registry (docker), the weights from the lab hub,
launch, readiness, smoke.

Every test runs the real ``playbooks/up.yaml``: ``PENDING_STACK_STEPS`` (steps to leave out of
a copy of it, for a step that does not yet pass in the lab) is empty and must stay so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
UP_PLAYBOOK = REPO / "playbooks" / "up.yaml"
PENDING_STACK_STEPS: frozenset[str] = frozenset()
WEIGHTS = "/srv/models/GLM-5"
# Small synthetic weights and a short simulated load: CI time (see the modules' docstrings).
LAB_HUB = {"mirror": True, "hub_shards": 2, "hub_shard_mb": 0.05}
SIM_ENV = {"SGLANG_SIM_LOAD_SECONDS": "1", "SGLANG_SIM_WARMUP_SECONDS": "1",
           "SGLANG_SIM_RENDEZVOUS_TIMEOUT": "30"}


def playbook_args(tmp: Path) -> list[str]:
    """``--playbook`` for the temporary cut of up.yaml (see the module docstring), else nothing."""
    if not PENDING_STACK_STEPS:
        return []
    doc = yaml.safe_load(UP_PLAYBOOK.read_text())
    doc["steps"] = [s for s in doc["steps"] if s["task"] not in PENDING_STACK_STEPS]
    path = tmp / "up-lab.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return ["--playbook", str(path)]


def inventory(lab: Any, dest: Path, *, cluster: str | None = None, runtime: str = "venv",
              http_port: int = 30000, dist_port: int = 20000, env: dict[str, str] | None = None,
              source: dict[str, str] | None = None) -> Path:
    """The lab's inventory (as `lab up` wrote it) with another cluster name, ports, runtime,
    simulator environment or weights source."""
    doc = yaml.safe_load(lab.inventory.read_text())
    if cluster:
        doc["cluster"]["name"] = cluster
    if source is not None:
        doc["model"]["source"] = source
    s = doc.setdefault("serving", {})
    s.update(runtime=runtime, http_port=http_port, dist_init_port=dist_port, readiness_timeout=120,
             env={**SIM_ENV, **(env or {})})
    if runtime == "docker":
        s["memlock_unlimited"] = False  # the lab's nested containers may not raise RLIMIT_MEMLOCK
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def cli(*args: str, timeout: float = 600, stdin: str | None = None) -> tuple[int, str, float]:
    """The real CLI: (exit code, stdout+stderr, seconds). stdin is never a terminal here."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "glm5cluster", *args], cwd=REPO, capture_output=True,  # noqa: S603
                       text=True, timeout=timeout, input=stdin or "", env={**os.environ, "COLUMNS": "200"})
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def up(inv: Path, pb: list[str], *extra: str, yes: bool = True) -> tuple[int, str, float]:
    """`glm5cluster up INV [--yes]`; ``pb`` from ``playbook_args``."""
    return cli("up", str(inv), *(["--yes"] if yes else []), *pb, *extra)


def status(inv: Path) -> tuple[int, dict[str, Any]]:
    rc, out, _ = cli("status", str(inv), "--format", "json", timeout=120)
    assert rc in (0, 1), out
    return rc, json.loads(out[out.index("{"):])


def wait_status(inv: Path, verdict: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, doc = status(inv)
        rep = doc["replicas"][0]
        if rep["verdict"] == verdict or time.monotonic() > deadline:
            return dict(rep)
        time.sleep(1)


def identity(lab: Any, host: str, cluster: str, runtime: str) -> str:
    """Which process instance runs the rank: the unit's InvocationID or the container's id."""
    stem = f"glm5-{cluster}-r0"
    cmd = (f"docker inspect -f '{{{{.Id}}}}' {stem} 2>/dev/null" if runtime == "docker"
           else f"systemctl show -p InvocationID --value {stem}.service")
    return lab.exec(host, cmd)[1].strip()


def leftovers(lab: Any, cluster: str, port: int) -> list[str]:
    """Anything of ``cluster`` on any host: units (loaded or files), containers, config, processes."""
    found = []
    for host in lab.hosts:
        _, out = lab.exec(host, (
            f"ls /etc/systemd/system | grep -F 'glm5-{cluster}-r'; "
            f"systemctl list-units --all --plain --no-legend 'glm5-{cluster}-r*'; "
            f"docker ps -a --filter label=glm5cluster.cluster={cluster} --format '{{{{.Names}}}}'; "
            f"ls -d /etc/glm5cluster/{cluster} 2>/dev/null; "
            f"pgrep -af -- '--port {port}' | grep -v pgrep; true"))
        found += [f"{host}: {line}" for line in out.splitlines() if line.strip()]
    return found


def serving_ok(out: str, endpoint: str) -> None:
    """`up` ended serving: smoke passed, endpoint, model id and a curl example printed."""
    assert "GLM-5 is serving: model id zai-org/GLM-5" in out, out
    assert endpoint in out and f"curl -s {endpoint}/v1/chat/completions" in out, out
    assert "smoke test: 1 ok" in out, out


def changed_nothing(out: str) -> None:
    assert "changed=0" in out and not any(f"changed={n}" in out for n in range(1, 20)), out


def noticed(out: str) -> float:
    """Seconds between a rank's exit and the report, as readiness states it."""
    import re

    m = re.search(r"noticed ([0-9.]+)s after it exited", out)
    assert m, out
    return float(m.group(1))


def down_lab(lab: Any) -> None:
    """Remove a module's lab when the module is done (frees the machine for the next module)."""
    if os.environ.get("GLM5LAB_KEEP"):
        return
    from glm5cluster.lab.manager import down

    down(lab.client, lab.name, None)
