"""A cold `glm5cluster up` to serving in the rehearsal lab, timed per phase, at several sizes.

    flock /tmp/glm5-lab.lock .venv/bin/python benchmarks/bench_up.py --sizes 4,16 --gpu H100

For each size N a fresh lab of N hosts (with its mirror: apt stand-ins, registry, package index,
model hub) is brought up, then ``glm5cluster up INV --yes`` runs once on the bare hosts (H100 x 8:
GLM-5 BF16 is tp=32, one replica group per 4 nodes, so 4 hosts = 1x4 and 16 hosts = 4x4). The
command's plain output is read line by line as it comes; every step ends with one
``[k] step: counts`` line, and the steps run one after another, so a step's wall time is the time
between its line and the previous one. Steps are summed into the phases of ``playbooks/up.yaml``
(facts, stack, runtime, weights, launch, readiness, smoke, router). The lab is removed after
each size unless ``--keep``. The simulated SGLang server loads in 1 s (SIM_ENV below, as the lab
tests): the launch/readiness phases measure the orchestration, not a model load.
Writes benchmarks/results/up.json and prints a markdown table, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "glm5cluster"]
SIM_ENV = {"SGLANG_SIM_LOAD_SECONDS": "1", "SGLANG_SIM_WARMUP_SECONDS": "1",
           "SGLANG_SIM_RENDEZVOUS_TIMEOUT": "60"}
# step name (playbooks/up.yaml) -> phase
PHASES = {
    "gather facts": "facts", "preflight (network, ports)": "facts", "preflight (fabric)": "facts",
    "NVIDIA driver": "stack", "NVIDIA fabric manager": "stack", "NVIDIA persistence daemon": "stack",
    "AMD ROCm": "stack", "reboot where the driver needs it": "stack", "verify GPUs": "stack",
    "docker engine": "stack", "NVIDIA container toolkit": "stack",
    "SGLang venv": "runtime", "SGLang image": "runtime", "SGLang accepts the launch flags": "runtime",
    "weights tools": "weights", "weights": "weights",
    "preflight (GPUs, SGLang, weights, limits)": "launch", "preflight (NCCL all-reduce gate)": "launch",
    "launch": "launch", "readiness": "readiness", "smoke test": "smoke",
    "router venv": "router", "router service": "router", "router workers": "router",
}
ORDER = ["facts", "stack", "runtime", "weights", "launch", "readiness", "smoke", "router"]
STEP_LINE = re.compile(r"^\[(\d+)\] (.+?): ")


def load1() -> float:
    return os.getloadavg()[0]


def timed_lines(argv: list[str]) -> tuple[int, float, list[tuple[float, str]]]:
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert p.stdout is not None
    lines = [(time.monotonic() - t0, ln.rstrip("\n")) for ln in p.stdout]
    return p.wait(), time.monotonic() - t0, lines


def per_step(lines: list[tuple[float, str]]) -> list[dict[str, Any]]:
    """Wall time of each applied step: from the previous step's end (or `-- applying`) to its line."""
    steps: list[dict[str, Any]] = []
    start = 0.0  # the first step also pays the process start and connecting
    for t, ln in lines:
        if ln.startswith("-- applying"):
            start, steps = t, []  # the apply pass (a plan pass, if any, came before)
        m = STEP_LINE.match(ln)
        if m:
            steps.append({"step": m.group(2), "seconds": round(t - start, 2), "line": ln})
            start = t
    return steps


def measure(n: int, a: argparse.Namespace, name: str, subnet: str) -> dict[str, Any]:
    l0, t0 = load1(), time.monotonic()
    up = subprocess.run([*CLI, "lab", "up", "--name", name, "--subnet", subnet, "--hosts", str(n),
                         "--gpu", a.gpu], capture_output=True, text=True, check=False)
    lab_s = time.monotonic() - t0
    if up.returncode != 0:
        raise SystemExit(f"lab up failed:\n{up.stdout}{up.stderr}")
    try:
        lab_inv = Path(up.stdout.strip().splitlines()[-1])
        doc = yaml.safe_load(lab_inv.read_text())
        doc["serving"].update(readiness_timeout=300, env=SIM_ENV)
        inv = lab_inv.with_name("bench-up.yaml")
        inv.write_text(yaml.safe_dump(doc, sort_keys=False))
        before = load1()
        rc, wall, lines = timed_lines([*CLI, "up", str(inv), "--yes"])
        after = load1()
        if rc != 0:
            print("\n".join(ln for _, ln in lines[-60:]), file=sys.stderr)
        steps = per_step(lines)
        phases = {p: 0.0 for p in ORDER}
        for s in steps:
            phases[PHASES.get(s["step"], "other")] = round(phases.get(PHASES.get(s["step"], "other"), 0.0)
                                                           + s["seconds"], 2)
        summary = [ln for _, ln in lines if ln.startswith(("GLM-5 is serving", "  replica "))]
        return {"hosts": n, "rc": rc, "wall_s": round(wall, 1), "lab_up_s": round(lab_s, 1),
                "load1_lab_up_start": l0, "load1_before_after": [before, after],
                "steps": steps, "phases": phases, "serving": summary}
    finally:
        if not a.keep:
            subprocess.run([*CLI, "lab", "down", "--name", name], capture_output=True, check=False)


def markdown(rows: list[dict[str, Any]]) -> str:
    sizes = [r["hosts"] for r in rows]
    out = ["| phase | " + " | ".join(f"{n} hosts ({n // 4}x4)" for n in sizes) + " |",
           "|---|" + "---|" * len(sizes)]
    names = ORDER + sorted({p for r in rows for p in r["phases"]} - set(ORDER))
    for p in names:
        out.append(f"| {p} | " + " | ".join(f"{r['phases'].get(p, 0.0):.1f} s" for r in rows) + " |")
    out.append("| **total `up`** | " + " | ".join(f"**{r['wall_s']:.1f} s** (rc {r['rc']})" for r in rows) + " |")
    out.append("| load (1 min) before -> after | " + " | ".join(
        f"{r['load1_before_after'][0]:.1f} -> {r['load1_before_after'][1]:.1f}" for r in rows) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4,16")
    ap.add_argument("--gpu", default="H100")
    ap.add_argument("--names", default="", help="lab names, one per size (default upb<N>)")
    ap.add_argument("--subnet-base", default="172.28.162", help="size i gets <base + i>.0/24")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    base, third = a.subnet_base.rsplit(".", 1)
    rows = []
    sizes = [int(x) for x in a.sizes.split(",")]
    names = a.names.split(",") if a.names else [f"upb{n}" for n in sizes]
    for i, n in enumerate(sizes):
        row = measure(n, a, names[i], f"{base}.{int(third) + i}.0/24")
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "steps"}), flush=True)
    doc = {"benchmark": "cold up, per phase", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "cores": os.cpu_count(), "gpu": a.gpu, "sim_env": SIM_ENV, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "up.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(markdown(rows))
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
