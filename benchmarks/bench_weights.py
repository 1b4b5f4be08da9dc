"""Time to stage the same weights on 1, 2 and 4 nodes, `each` vs fan-out, hub capped slow.

    .venv/bin/python benchmarks/bench_weights.py --lab-inventory <lab inventory> [--shards 8 --shard-mb 256]

Needs the rehearsal lab + mirror (hub simulator with a total bandwidth cap). For each
(nodes, mode) it wipes the weights dir on the nodes, runs ``glm5cluster run weights`` limited
to the first N hosts with ``model.source.mode`` set, and reports wall time and the ratios the
issue targets: fan-out@4 / fan-out@1 <= 1.25, each@4 / fan-out@4 >= 2.5.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def stage(inventory: str, hosts: list[str], mode: str, wipe: str) -> float:
    limit = ",".join(hosts)
    for h in hosts:
        subprocess.run([sys.executable, "-m", "glm5cluster", "exec", "-i", inventory, "--limit", h, wipe], check=True)
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "glm5cluster", "run", "weights", "-i", inventory, "--limit", limit,
                    "--set", f"model.source.mode={mode}"], check=True)
    return time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab-inventory", required=True)
    ap.add_argument("--hosts", nargs="+", required=True, help="lab host names, seed first")
    ap.add_argument("--weights-dir", default="/models/glm5")
    a = ap.parse_args()
    wipe = f"rm -rf {a.weights_dir}"
    rows = {}
    for n in (1, 2, 4):
        for mode in ("fanout", "each") if n > 1 else ("fanout",):
            rows[(n, mode)] = stage(a.lab_inventory, a.hosts[:n], mode, wipe)
            print(f"{n} node(s) {mode:6s} {rows[(n, mode)]:7.1f} s", flush=True)
    f1, f4, e4 = rows[(1, "fanout")], rows[(4, "fanout")], rows[(4, "each")]
    print(f"fan-out 4 / 1 node: {f4 / f1:.2f}x (target <= 1.25)")
    print(f"each 4 / fan-out 4: {e4 / f4:.2f}x (target >= 2.5)")
    return 0 if f4 / f1 <= 1.25 and e4 / f4 >= 2.5 else 1


if __name__ == "__main__":
    sys.exit(main())
