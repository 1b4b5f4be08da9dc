"""The controller's start-up on the converged re-run path, measured in load-insensitive terms.

What `glm5cluster run INV converge` does before it opens a connection: import the CLI, the run
command, the SSH transport, load and validate the inventory and the playbook. Measured for one
or more checkouts (a directory with the glm5cluster package; e.g. `git archive` of an older
commit), each in a fresh interpreter:

- modules imported, and the sum of ``-X importtime`` self times (noisy under load);
- CPU time (user+sys) of the whole process, min of ``--runs``;
- instructions executed (``valgrind --tool=callgrind``, the ``I refs`` total): independent of the
  machine's load, the number to compare on a shared machine.

    .venv/bin/python benchmarks/bench_startup.py --root before=/tmp/base --root after=. --callgrind

Prints a markdown table (with the load average) and writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
RESULTS = HERE / "benchmarks" / "results"
RUN_PATH = """
import sys
from glm5cluster.cli.main import cli
import glm5cluster.cli.run_cmd
import glm5cluster.connect.ssh
from glm5cluster.model.loader import load_inventory
from glm5cluster.engine.playbook import load_playbook
inv = load_inventory(sys.argv[1])
pb = load_playbook(sys.argv[2])
print(len(sys.modules))
"""


def _cmd(script: Path, root: Path) -> list[str]:
    return [sys.executable, str(script), str(root / "inventory" / "lab.yaml"), str(root / "playbooks" / "converge.yaml")]


def measure(root: Path, runs: int, callgrind: bool) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "run_path.py"
        script.write_text(RUN_PATH)
        p = subprocess.run([sys.executable, "-X", "importtime", *_cmd(script, root)[1:]], env=env, cwd=root,
                           capture_output=True, text=True, check=True)
        selfs = [int(m.group(1)) for m in re.finditer(r"import time:\s+(\d+) \|", p.stderr)]
        cpu = []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(_cmd(script, root), env=env, cwd=root, capture_output=True, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        out: dict[str, object] = {"modules": int(p.stdout.strip()), "importtime_self_ms": round(sum(selfs) / 1000),
                                  "cpu_s_min": round(min(cpu), 3), "load": os.getloadavg()[0]}
        if callgrind:
            cg = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                                 *_cmd(script, root)], env=env, cwd=root, capture_output=True, text=True, check=True)
            m = re.search(r"I\s+refs:\s+([\d,]+)", cg.stderr)
            out["instructions"] = int(m.group(1).replace(",", "")) if m else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", action="append", default=[], metavar="LABEL=DIR", help="checkout to measure")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--callgrind", action="store_true")
    a = ap.parse_args()
    roots = [r.split("=", 1) for r in (a.root or [f"this={HERE}"])]
    res = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(),
           "results": {label: measure(Path(d).resolve(), a.runs, a.callgrind) for label, d in roots}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(res, indent=1) + "\n")
    print("| checkout | modules | importtime self (ms) | cpu min (s) | instructions | load (1 min) |")
    print("|---|---|---|---|---|---|")
    for label, r in res["results"].items():
        ins = r.get("instructions")
        print(f"| {label} | {r['modules']} | {r['importtime_self_ms']} | {r['cpu_s_min']} | "
              f"{f'{ins:,}' if ins else '-'} | {r['load']:.1f} |")


if __name__ == "__main__":
    main()
