"""A large rehearsal lab, measured: boot time, memory per host, and the controller's own resources.

Run it under the lab lock, once, on a machine with the memory for it (64 hosts: see
benchmarks/results/scale.md). It brings the lab up, measures, and takes it down again:

    flock /tmp/glm5-lab.lock .venv/bin/python benchmarks/lab_scale.py \\
        --name k1 --hosts 64 --subnet 172.28.150.0/24 --docker-on-demand --follow-seconds 180

Measured (each with the 1-minute load average beside it, since other work shares the cores):
- ``lab up`` wall time (image already built), from the command's start to "hosts ready";
- memory of every host container from its cgroup (v2 ``memory.current``; v1 ``memory.usage_in_bytes``
  and the anonymous part ``total_rss`` of ``memory.stat``): per host median/max and the total;
- the converged run ``glm5cluster run INV converge --yes`` (twice: converge, then the converged
  re-run): wall, the controller's peak RSS (VmHWM), most threads and open fds (sampled every 50 ms);
- ``glm5cluster logs INV --follow`` for ``--follow-seconds``: RSS, threads and fds at the start and
  the end (a per-host cost that grows would show here).
Writes benchmarks/results/scale-<hosts>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The package from this checkout (PYTHONPATH below), even when the venv has another one installed.
GLM = [sys.executable, "-m", "glm5cluster"]
os.environ["PYTHONPATH"] = str(ROOT)
RESULTS = ROOT / "benchmarks" / "results"


def load() -> float:
    return os.getloadavg()[0]


def cgroup_memory(cid: str) -> dict[str, int]:
    """Bytes of one container's cgroup: total (usage) and anonymous (rss)."""
    v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope")
    if (v2 / "memory.current").exists():
        stat = dict(ln.split() for ln in (v2 / "memory.stat").read_text().splitlines())
        return {"total": int((v2 / "memory.current").read_text()), "anon": int(stat.get("anon", 0))}
    v1 = Path(f"/sys/fs/cgroup/memory/docker/{cid}")
    stat = dict(ln.split() for ln in (v1 / "memory.stat").read_text().splitlines())
    return {"total": int((v1 / "memory.usage_in_bytes").read_text()), "anon": int(stat.get("total_rss", 0))}


def lab_memory(name: str) -> dict[str, Any]:
    ids = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"label=glm5cluster.lab={name}",
                          "--filter", "label=glm5cluster.lab.host"], capture_output=True, text=True,
                         check=True).stdout.split()
    mems = [cgroup_memory(i) for i in ids]
    mib = 1024 * 1024

    def summary(key: str) -> dict[str, float]:
        vals = [m[key] / mib for m in mems]
        return {"median_mib": round(statistics.median(vals), 1), "max_mib": round(max(vals), 1),
                "total_mib": round(sum(vals), 1)}

    return {"hosts": len(ids), "cgroup_total": summary("total"), "anon": summary("anon"), "load": load()}


def proc_sample(pid: int) -> dict[str, int] | None:
    try:
        status = dict(ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines())
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return None
    kb = lambda k: int(status.get(k, "0 kB").split()[0])  # noqa: E731
    return {"rss_kib": kb("VmRSS"), "hwm_kib": kb("VmHWM"), "threads": int(status["Threads"]), "fds": fds}


def watched(argv: list[str], seconds: float | None = None) -> dict[str, Any]:
    """Run argv, sampling its resources every 50 ms; stop it with SIGINT after `seconds`."""
    l0, t0 = load(), time.monotonic()
    # SIGINT as at a terminal: a script started in the background (`cmd &` in a non-interactive
    # shell, nohup) runs with SIGINT ignored, its children inherit that, and Python then installs no
    # KeyboardInterrupt handler, so the SIGINT below would be lost (measured once as a hang)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    samples: list[tuple[float, dict[str, int]]] = []
    while proc.poll() is None:
        s = proc_sample(proc.pid)
        if s:
            samples.append((time.monotonic() - t0, s))
        if seconds is not None and time.monotonic() - t0 > seconds:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    t_int = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # Ctrl-C did not end it: record that, then end it
        proc.kill()
        _, err = proc.communicate()
        err = "did not end within 60 s of SIGINT (killed)\n" + err
    wall = time.monotonic() - t0
    out: dict[str, Any] = {"argv": argv[1:], "rc": proc.returncode, "wall_s": round(wall, 2),
                           "load_start": l0, "load_end": load(), "stderr_tail": err[-400:]}
    if seconds is not None:
        out["exit_after_sigint_s"] = round(time.monotonic() - t_int, 2)
    if samples:
        out["peak_rss_mib"] = round(max(s["hwm_kib"] for _, s in samples) / 1024, 1)
        out["max_threads"] = max(s["threads"] for _, s in samples)
        out["max_fds"] = max(s["fds"] for _, s in samples)
        if seconds is not None:
            warm = [s for t, s in samples if t > 15]  # connections are open by then
            if warm:
                out["after_15s"] = warm[0]
                out["at_end"] = warm[-1]
    return out


def on_demand_check(name: str) -> dict[str, str]:
    """node-1: dockerd is not running after boot, and the first `docker` command starts it."""
    c = f"glm5lab-{name}-node-1"
    sh = lambda cmd: subprocess.run(["docker", "exec", c, "sh", "-c", cmd], capture_output=True,  # noqa: E731
                                    text=True, check=False).stdout.strip()
    return {"after_boot": sh("systemctl is-active docker.service containerd.service | tr '\\n' ' '"),
            "docker_info": sh("timeout 90 docker info --format '{{.ServerVersion}}' 2>&1 | tail -1"),
            "after_first_use": sh("systemctl is-active docker.service")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="k1")
    ap.add_argument("--hosts", type=int, default=64)
    ap.add_argument("--subnet", default="172.28.150.0/24")
    ap.add_argument("--docker-on-demand", action="store_true")
    ap.add_argument("--follow-seconds", type=float, default=180)
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    ap.add_argument("--out", type=Path, help="results file (default benchmarks/results/scale-<hosts>.json)")
    a = ap.parse_args()
    res: dict[str, Any] = {"hosts": a.hosts, "docker_on_demand": a.docker_on_demand, "cores": os.cpu_count(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    up = [*GLM, "lab", "up", "--name", a.name, "--hosts", str(a.hosts), "--subnet", a.subnet, "--no-mirror"]
    up += ["--docker-on-demand"] if a.docker_on_demand else []
    l0, t0 = load(), time.monotonic()
    try:
        p = subprocess.run(up, capture_output=True, text=True, check=False)
        res["lab_up"] = {"rc": p.returncode, "wall_s": round(time.monotonic() - t0, 1), "load_start": l0,
                         "load_end": load(), "log": p.stderr[-1500:]}
        print(json.dumps(res["lab_up"], indent=1), flush=True)
        if p.returncode != 0:
            return
        inv = p.stdout.strip().splitlines()[-1]
        res["memory_booted"] = lab_memory(a.name)
        print(json.dumps(res["memory_booted"]), flush=True)
        if a.docker_on_demand:
            res["docker_on_demand_check"] = on_demand_check(a.name)
            print(json.dumps(res["docker_on_demand_check"]), flush=True)
        run = [*GLM, "run", inv, str(ROOT / "playbooks" / "converge.yaml"), "--yes"]
        res["converge_first"] = watched(run)
        res["converge_rerun"] = watched(run)
        print(json.dumps(res["converge_rerun"]), flush=True)
        res["memory_after_converge"] = lab_memory(a.name)
        res["logs_follow"] = watched([*GLM, "logs", inv, "--follow"], seconds=a.follow_seconds)
        print(json.dumps(res["logs_follow"]), flush=True)
    finally:
        RESULTS.mkdir(exist_ok=True)
        (a.out or RESULTS / f"scale-{a.hosts}.json").write_text(json.dumps(res, indent=1) + "\n")
        if not a.keep:
            subprocess.run([*GLM, "lab", "down", "--name", a.name], check=False)


if __name__ == "__main__":
    main()
