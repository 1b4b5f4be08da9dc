"""Requests through the router while both replica groups are replaced: `glm5cluster rollout`
(one group at a time) vs the naive way (`glm5cluster up` with the new flags: every group
restarted at once), in one run.

    .venv/bin/python benchmarks/bench_rollout.py [--clients 8 --settle 20 --keep]

Brings up its own rehearsal lab (4 simulated H200 hosts + the mirror, lab name ``rbench``,
172.28.132.0/24), serves BF16 GLM-5 as two tp16 replicas behind the real sglang-router 0.3.2
(``glm5cluster up``), then runs a bounded closed-loop load (``--clients`` threads, each one
chat completion after the other, alternately non-streaming and streaming) through the router:
``settle`` seconds before, during `glm5cluster rollout` of a launch-flag change to both groups,
``settle`` seconds after; then the same around `glm5cluster up --yes` of another flag change
(the naive way). Records requests sent and failed and p50/p99 latency per phase and the wall
time of each replacement. Writes ``benchmarks/results/rollout.json`` and ``rollout.md``. The
lab is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.loadgen import Load  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "glm5cluster"]
SIM_ENV = {"SGLANG_SIM_LOAD_SECONDS": "3", "SGLANG_SIM_WARMUP_SECONDS": "1", "SGLANG_SIM_RENDEZVOUS_TIMEOUT": "60"}


def sh(argv: list[str], timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, timeout=timeout, cwd=ROOT)  # noqa: S603


def inventory(base: Path, dest: Path, max_running: int) -> Path:
    doc = yaml.safe_load(base.read_text())
    doc["cluster"]["name"] = "rbench"
    doc["serving"].update(readiness_timeout=300, env=SIM_ENV, extra_args=["--max-running-requests", str(max_running)])
    doc["replicas"] = {"router": {"host": "node-4", "port": 8000, "health_check_interval": 2}}
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def measured(load: Load, phase: str, argv: list[str], settle: float) -> tuple[float, str]:
    load.phase = phase
    t0 = time.monotonic()
    r = sh(argv)
    took = time.monotonic() - t0
    load.phase = f"after {phase}"
    time.sleep(settle)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}")
    return took, r.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="rbench")
    ap.add_argument("--subnet", default="172.28.132.0/24")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--settle", type=float, default=20.0, help="seconds of load before and after each replacement")
    ap.add_argument("--keep", action="store_true", help="leave the lab running")
    a = ap.parse_args()
    up = sh([*CLI, "lab", "up", "--name", a.name, "--subnet", a.subnet, "--hosts", "4", "--gpu", "H200",
             "--hub-shards", "2", "--hub-shard-mb", "1"])
    if up.returncode != 0:
        raise SystemExit(f"lab up failed:\n{up.stdout}{up.stderr}")
    home = Path(os.environ.get("GLM5CLUSTER_LAB_HOME") or Path.home() / ".glm5cluster" / "lab") / a.name
    work = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    try:
        inv_a = inventory(home / "inventory.yaml", work / "a.yaml", 64)
        inv_b = inventory(home / "inventory.yaml", work / "b.yaml", 48)
        inv_c = inventory(home / "inventory.yaml", work / "c.yaml", 32)
        r = sh([*CLI, "up", str(inv_a), "--yes"])
        if r.returncode != 0:
            raise SystemExit(f"up failed:\n{r.stdout[-4000:]}")
        router = yaml.safe_load(inv_a.read_text())["hosts"][3]["address"]
        load = Load(f"http://{router}:8000", "zai-org/GLM-5", clients=a.clients).start()
        time.sleep(a.settle)
        t_roll, out_roll = measured(load, "rollout", [*CLI, "rollout", str(inv_b)], a.settle)
        t_naive, _ = measured(load, "naive", [*CLI, "up", str(inv_c), "--yes"], a.settle)
        load.stop()
    finally:
        if not a.keep:
            sh([*CLI, "lab", "down", "--name", a.name])
    phases = ["before", "rollout", "after rollout", "naive", "after naive"]
    stats = {p: load.stats(p) for p in phases}
    doc = {"clients": a.clients, "settle_s": a.settle, "rollout_wall_s": round(t_roll, 1),
           "naive_wall_s": round(t_naive, 1), "phases": stats,
           "errors": {p: sorted({s.error[:120] for s in load.failures(p)})[:5] for p in phases},
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load1": float(Path("/proc/loadavg").read_text().split()[0])},
           "rollout_log": [line for line in out_roll.splitlines() if line.startswith(("replica", "rollout"))]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rollout.json").write_text(json.dumps(doc, indent=2) + "\n")
    rows = ["| phase | requests | failed | p50 | p99 |", "|---|---|---|---|---|"]
    for p in phases:
        s = stats[p]
        rows.append(f"| {p} | {s['requests']} | {s['failed']} | {s['p50_ms']} ms | {s['p99_ms']} ms |")
    md = ("# Rollout under load (benchmarks/bench_rollout.py)\n\n"
          f"{a.clients} closed-loop clients through the real sglang-router 0.3.2 in front of two tp16 replicas "
          f"(lab, simulated H200; load time {SIM_ENV['SGLANG_SIM_LOAD_SECONDS']} s). "
          f"`glm5cluster rollout` (one group at a time): {t_roll:.0f} s wall; naive `up` (both groups restarted "
          f"at once): {t_naive:.0f} s wall.\n\n" + "\n".join(rows) + "\n")
    (RESULTS / "rollout.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
