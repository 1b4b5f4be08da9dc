"""Where the wall time of one `glm5cluster run` goes: a py-spy wall-clock profile, summarised.

    .venv/bin/python benchmarks/profile_run.py --py-spy /path/to/py-spy -- run INV playbooks/converge.yaml --yes

Runs ``glm5cluster <args>`` under ``py-spy record --idle --threads`` (samples every thread,
waiting included, ``--rate`` per second) and sorts the main thread's samples into what the run
was doing (interpreter start before the first sample, imports, inventory, playbook, connecting,
the cluster's run lock, the steps, the recap, exit), by the first matching frame from the root.
The other threads (SSH transports, workers) are summarised by their busiest frames. py-spy is not
a dependency of the project (``pip install py-spy``); the profile adds some overhead of its own.
Prints a markdown table; ``--out`` also writes the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
# (category, frame pattern), tried root-first on each main-thread stack; imports first, so a
# lazy import inside a step counts as an import
CATEGORIES = [
    ("imports", re.compile(r"^_find_and_load |^_call_with_frames_removed ")),
    ("inventory (load, validate)", re.compile(r"^load_inventory ")),
    ("playbook (load, validate)", re.compile(r"^load_playbook ")),
    ("run lock (take, release)", re.compile(r"^_take_lock |^_release_lock ")),
    ("steps (facts, plan, apply)", re.compile(r"^run_playbook ")),
    ("close connections", re.compile(r"^ConnectionPool\.__exit__ ")),
    ("recap", re.compile(r"^show_outcome ")),
]
# the other threads: per-host SSH transports (paramiko) and the run's workers
THREAD_CATEGORIES = [
    ("paramiko transport threads (packets, crypto, waiting)", re.compile(r"^Transport\.run ")),
    ("workers: connecting (TCP, SSH handshake, auth)", re.compile(r"^ConnectionPool\.get ")),
    ("workers: running commands (waiting on the hosts)", re.compile(r"^\w+\.(run|put|stream) \(glm5cluster/connect")),
    ("workers: engine (plan, parse facts)", re.compile(r"\(glm5cluster/(engine|tasks|facts)/")),
]


def record(py_spy: str, argv: list[str], rate: int) -> tuple[float, Path]:
    out = Path(tempfile.mkdtemp(prefix="glm5prof-")) / "raw.txt"
    cmd = [py_spy, "record", "--idle", "--threads", "--rate", str(rate), "--format", "raw", "-o", str(out),
           "--", str(VENV_BIN / "python"), "-m", "glm5cluster", *argv]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if not out.exists():
        raise SystemExit(f"py-spy wrote nothing (rc {p.returncode}):\n{p.stderr[-2000:]}")
    return wall, out


def parse(raw: Path) -> list[tuple[str, list[str], int]]:
    """(thread, frames root-first, samples) per line of py-spy's raw (collapsed) output."""
    rows = []
    for ln in raw.read_text().splitlines():
        stack, _, n = ln.rpartition(" ")
        frames = stack.split(";")
        # "thread (ID)" or, once Python named it, "thread (ID): NAME": one key per thread
        thread = next((m.group(0) for f in frames if (m := re.match(r"thread \(\w+\)", f))), "?")
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        rows.append((thread, frames, int(n)))
    return rows


def summarise(rows: list[tuple[str, list[str], int]], rate: int, wall: float) -> dict[str, object]:
    by_thread = Counter[str]()
    for t, _, n in rows:
        by_thread[t] += n
    # the main thread: the one running the CLI module (py-spy names threads by id only)
    main = next((t for t, frames, _ in rows if any(f.startswith("_run_module_as_main ") for f in frames)), "?")
    cats = Counter[str]()
    for t, frames, n in rows:
        if t != main:
            continue
        cat = "other (interpreter, click, exit)"
        for f in frames:
            hit = next((c for c, rx in CATEGORIES if rx.search(f)), None)
            if hit:
                cat = hit
                break
        cats[cat] += n
    sampled = sum(cats.values()) / rate
    others = Counter[str]()
    for t, frames, n in rows:
        if t != main and frames:
            cat = next((c for f in frames for c, rx in THREAD_CATEGORIES if rx.search(f)),
                       "idle workers / other")
            others[cat] += n
    return {"wall_s": round(wall, 3), "main_thread_sampled_s": round(sampled, 3),
            "not_sampled_s (process start, py-spy attach)": round(wall - sampled, 3),
            "main_thread_s": {c: round(n / rate, 3) for c, n in cats.most_common()},
            "threads": len(by_thread),
            "other_threads_s": {f: round(n / rate, 3) for f, n in others.most_common(8)}}


def markdown(s: dict[str, object]) -> str:
    lines = [f"wall {s['wall_s']:.2f} s under py-spy; main thread:", "", "| what | s |", "|---|---|",
             f"| not sampled (process start before py-spy's first sample) | "
             f"{s['not_sampled_s (process start, py-spy attach)']:.2f} |"]
    lines += [f"| {c} | {v:.2f} |" for c, v in s["main_thread_s"].items()]  # type: ignore[attr-defined]
    lines += ["", f"{s['threads']} threads; the other threads' summed wall time (waiting included):", ""]
    lines += [f"- {f}: {v:.2f} s" for f, v in s["other_threads_s"].items()]  # type: ignore[attr-defined]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--py-spy", default="py-spy")
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--summarise", type=Path, metavar="RAW", help="summarise an earlier py-spy raw file "
                    "(with --wall, the run's wall seconds) instead of recording")
    ap.add_argument("--wall", type=float, default=0.0)
    ap.add_argument("argv", nargs="*", help="glm5cluster arguments, after --")
    a = ap.parse_args()
    wall, raw = (a.wall, a.summarise) if a.summarise else record(a.py_spy, a.argv, a.rate)
    s = summarise(parse(raw), a.rate, wall)
    if a.out:
        a.out.write_text(json.dumps(s, indent=1) + "\n")
    print(markdown(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
