"""Time to stage the same weights on 1, 2 and 4 nodes, `each` vs fan-out, hub capped slow.

    .venv/bin/python benchmarks/bench_weights.py [--shards 8 --shard-mb 256 --rate-mbps 300 --repeat 1]

Brings up its own rehearsal lab (4 hosts + the mirror; the hub simulator serves a GLM-5-shaped
repository of ``shards`` x ``shard-mb`` MiB behind a TOTAL bandwidth cap of ``rate-mbps``),
installs the weights tools once, then for each (nodes, mode) wipes the weights directory on the
nodes and times ``glm5cluster run INV playbooks/weights.yaml --yes --limit <first N hosts>`` with
``model.source.mode`` set (``--repeat N``: N runs each, the median is reported). The machine's
load average (1 min) before and after each run is recorded: the lab shares the machine's cores
with whatever else runs there, so a loaded machine slows every row. Writes ``benchmarks/results/weights.json`` and ``weights.md`` and
prints the ratios the issue targets: fan-out@4 / fan-out@1 <= 1.25, each@4 / fan-out@4 >= 2.5.
The lab is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "glm5cluster"]


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, **kw)  # type: ignore[call-overload,no-any-return]  # noqa: S603


def lab_exec(lab: str, host: str, script: str) -> None:
    r = sh(["docker", "exec", f"glm5lab-{lab}-{host}", "sh", "-c", script])
    if r.returncode != 0:
        raise SystemExit(f"{host}: {script}: {r.stdout}{r.stderr}")


def inventory_for(base: Path, mode: str) -> Path:
    doc = yaml.safe_load(base.read_text())
    doc["model"]["source"]["mode"] = mode
    out = base.with_name(f"bench-{mode}.yaml")
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_weights(inv: Path, hosts: list[str]) -> tuple[float, str]:
    start = time.monotonic()
    r = sh([*CLI, "run", str(inv), str(ROOT / "playbooks" / "weights.yaml"), "--yes", "--limit", ",".join(hosts)])
    took = time.monotonic() - start
    if r.returncode != 0:
        raise SystemExit(f"weights run on {hosts} failed:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return took, r.stdout


SHAPE_MARK = "## The shape of the fan-out"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="wbench")
    ap.add_argument("--subnet", default="172.28.88.0/24")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard-mb", type=float, default=256.0)
    ap.add_argument("--rate-mbps", type=float, default=300.0)
    ap.add_argument("--repeat", type=int, default=1, help="runs per row; the median is reported")
    ap.add_argument("--keep", action="store_true", help="leave the lab running")
    ap.add_argument("--nodes", default="1,2,4", help="fan-out sizes, e.g. 1,2,4,8,16 (the lab gets the largest)")
    ap.add_argument("--each-max", type=int, default=4, help="also time `each` up to this many nodes")
    a = ap.parse_args()
    sizes = sorted({int(x) for x in a.nodes.split(",")} | {1})
    hosts = [f"node-{i}" for i in range(1, max(sizes) + 1)]
    up = sh([*CLI, "lab", "up", "--name", a.name, "--subnet", a.subnet, "--hosts", str(len(hosts)), "--gpu", "H200",
             "--hub-shards", str(a.shards), "--hub-shard-mb", str(a.shard_mb), "--hub-rate-mbps", str(a.rate_mbps)])
    if up.returncode != 0:
        raise SystemExit(f"lab up failed:\n{up.stdout}{up.stderr}")
    base = Path(up.stdout.strip().splitlines()[-1])
    wdir = yaml.safe_load(base.read_text())["model"]["weights_dir"]
    inv = {m: inventory_for(base, m) for m in ("fanout", "each")}
    try:
        # the tools venv (huggingface_hub) once, outside the timings: a wipe keeps it
        tools = base.with_name("bench-tools.yaml")
        tools.write_text("name: bench-tools\nsteps:\n  - {name: weights tools, task: weights.tools}\n")
        r = sh([*CLI, "run", str(inv["fanout"]), str(tools), "--yes"])
        if r.returncode != 0:
            raise SystemExit(f"weights tools failed:\n{r.stdout[-3000:]}")
        rows: list[dict[str, object]] = []
        for n in sizes:
            for mode in ("fanout", "each") if 1 < n <= a.each_max else ("fanout",):
                runs, loads = [], []
                for _ in range(max(1, a.repeat)):
                    for h in hosts:
                        lab_exec(a.name, h, f"rm -rf {wdir}")
                    before = load1()
                    took, _ = run_weights(inv[mode], hosts[:n])
                    runs.append(round(took, 1))
                    loads.append([before, load1()])
                    print(f"{n} node(s) {mode:6s} {took:7.1f} s  load {before:.1f} -> {load1():.1f}", flush=True)
                rows.append({"nodes": n, "mode": mode, "seconds": statistics.median(runs), "runs": runs,
                             "load1_before_after": loads})
    finally:
        if not a.keep:
            sh([*CLI, "lab", "down", "--name", a.name])
    t = {(r["nodes"], r["mode"]): float(r["seconds"]) for r in rows}  # type: ignore[arg-type]
    f1 = t[(1, "fanout")]
    f4, e4 = t.get((4, "fanout"), float("nan")), t.get((4, "each"), float("nan"))
    size_mib = a.shards * a.shard_mb
    summary = {"fanout4_over_1": round(f4 / f1, 2), "each4_over_fanout4": round(e4 / f4, 2),
               "targets": {"fanout4_over_1": "<= 1.25", "each4_over_fanout4": ">= 2.5"},
               "met": f4 / f1 <= 1.25 and e4 / f4 >= 2.5}
    doc = {"benchmark": "weights staging", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
           "weights": {"shards": a.shards, "shard_mib": a.shard_mb, "total_mib": size_mib},
           "hub_rate_mbps_total": a.rate_mbps,
           "floor_seconds_one_download": round(size_mib * 8 * 1.048576 / a.rate_mbps, 1),
           "rows": rows, "summary": summary, "load1_at_start": load1(),
           "load1_range": [min(x for r in rows for p in r["load1_before_after"] for x in p),  # type: ignore[attr-defined]
                           max(x for r in rows for p in r["load1_before_after"] for x in p)]}  # type: ignore[attr-defined]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "weights.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = [f"Weights staging: {a.shards} x {a.shard_mb:.0f} MiB ({size_mib / 1024:.1f} GiB), hub capped at "
          f"{a.rate_mbps:.0f} Mbit/s total (one download >= {doc['floor_seconds_one_download']} s); "
          f"{doc['machine']}; wall time of `glm5cluster run INV weights` (tools already installed), "
          f"{'median of ' + str(a.repeat) + ' runs' if a.repeat > 1 else 'one run'} per cell, all in one session; "
          f"machine load average (1 min) during the session {doc['load1_range'][0]:.1f}-{doc['load1_range'][1]:.1f} "
          "(other work shares the 2 cores).", "",
          "| nodes | fan-out (s) | each (s) |", "|---|---|---|"]
    for n in sizes:
        each = t.get((n, "each"), t[(1, "fanout")] if n == 1 else None)
        md.append(f"| {n} | {t[(n, 'fanout')]:.1f} | {each:.1f} |" if each is not None else f"| {n} | {t[(n, 'fanout')]:.1f} | - |")
    md += ["", f"fan-out 4 nodes / 1 node: **{f4 / f1:.2f}x** (target <= 1.25); "
               f"each / fan-out on 4 nodes: **{e4 / f4:.2f}x** (target >= 2.5)", ""]
    md += [f"fan-out {n} nodes / 1 node: {t[(n, 'fanout')] / f1:.2f}x" for n in sizes if n > 4]
    old = (RESULTS / "weights.md").read_text() if (RESULTS / "weights.md").exists() else ""
    keep = old[old.find(SHAPE_MARK):] if SHAPE_MARK in old else ""  # the hand-written explanation
    (RESULTS / "weights.md").write_text("\n".join(md) + ("\n" + keep if keep else ""))
    print("\n".join(md))
    return 0 if summary["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
