"""glm5cluster NCCL probe: an all-reduce gate run ON a node with the runtime's own torch.

Uploaded next to the weights agent and started on every node of a replica with the same
interpreter (venv python) or image (same ``docker run`` flags) that SGLang will use, so it tests the
exact torch/NCCL build, environment (``NCCL_*``, ``GLOO_*``) and container spec of the server.

    python3 nccl_probe.py --master ADDR:PORT --nnodes N --node-rank I --gpus G \
        [--sizes 1M,64M,256M,1G] [--iters 20] [--warmup 5] [--timeout 120]

The node-rank process starts one worker per local GPU (global rank = node_rank * G + local).
All workers join one NCCL process group over TCP at ``--master`` (the same address scheme as
SGLang's ``--dist-init-addr``, on another port). Two phases per size:

* ``local``: an all-reduce among this node's GPUs only (finds a slow node: NVLink/NVSwitch,
  fabric manager, a throttled GPU);
* ``global``: an all-reduce across every GPU of the replica (finds a slow or broken network path).

Every line the probe prints for the controller starts with ``GLM5PROBE `` followed by one JSON
object; anything else (NCCL's own INFO lines, warnings) is noise to the parser. Events:

``{"event": "reached", "node_rank", "rank", "s"}`` (a plain TCP connect to ``--master`` worked: the
node can reach the rendezvous, so a later timeout is someone else's)
``{"event": "init", "node_rank", "rank", "init_s"}``
``{"event": "result", "node_rank", "phase", "size", "ranks", "time_us", "algbw_gbps", "busbw_gbps"}``
``{"event": "error", "node_rank", "rank", "stage", "message"}``
``{"event": "done", "node_rank", "ok", "wall_s"}``

Bus bandwidth follows nccl-tests' definition for all-reduce: ``algbw * 2 * (n - 1) / n``.
The parent enforces ``--timeout`` on the whole probe: a worker that never joins (a node that cannot
reach the master, a firewalled NCCL port) is reported as ``error`` with ``stage: "timeout"``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

PREFIX = "GLM5PROBE "
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(PREFIX + json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def busbw(algbw: float, n: int) -> float:
    return algbw * 2 * (n - 1) / n if n > 1 else 0.0


def build_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nccl_probe")
    p.add_argument("--master", required=True, help="ADDR:PORT of node 0 (IPv6 in brackets)")
    p.add_argument("--nnodes", type=int, required=True)
    p.add_argument("--node-rank", type=int, required=True)
    p.add_argument("--gpus", type=int, required=True, help="GPUs on this node")
    p.add_argument("--sizes", default="1M,64M,256M,1G")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _time_allreduce(torch, dist, numel: int, group, iters: int, warmup: int) -> float:  # type: ignore[no-untyped-def]
    buf = torch.ones(numel, dtype=torch.bfloat16, device="cuda")
    for _ in range(warmup):
        dist.all_reduce(buf, group=group)
    torch.cuda.synchronize()
    dist.barrier(group=group)
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(buf, group=group)
    torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / iters
    # the slowest rank sets the time of a collective: agree on the max
    t = torch.tensor([elapsed], dtype=torch.float64, device="cuda")
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    del buf
    return float(t.item())


def mark(args: argparse.Namespace, rank: int, stage: str) -> None:
    """Where a rank is: when the probe is killed at its timeout, the last mark of a rank that hung
    says where (a GPU that never answered, the rendezvous, NCCL's own init)."""
    emit({"event": "stage", "node_rank": args.node_rank, "rank": rank, "stage": stage})


def reach(args: argparse.Namespace, rank: int) -> None:
    """Rank 0 hosts the rendezvous; every other rank first proves it can open TCP to it."""
    t0 = time.perf_counter()
    if rank != 0:
        host, _, port = args.master.rpartition(":")
        deadline = t0 + args.timeout
        while True:
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
                break
            except OSError:
                if time.perf_counter() > deadline:
                    return
                time.sleep(0.2)
    emit({"event": "reached", "node_rank": args.node_rank, "rank": rank, "s": round(time.perf_counter() - t0, 4)})


def worker(args: argparse.Namespace) -> int:
    local = int(args.worker)
    rank = args.node_rank * args.gpus + local
    world = args.nnodes * args.gpus
    stage = "import"
    try:
        import datetime

        import torch
        import torch.distributed as dist

        stage = "device"
        mark(args, rank, stage)
        torch.cuda.set_device(local)
        stage = "reach"
        mark(args, rank, stage)
        reach(args, rank)
        stage = "init"
        mark(args, rank, stage)
        t0 = time.perf_counter()
        dist.init_process_group(
            "nccl", init_method=f"tcp://{args.master}", world_size=world, rank=rank,
            timeout=datetime.timedelta(seconds=max(10.0, args.timeout)),
            device_id=torch.device("cuda", local),
        )
        # every rank must create every subgroup, in the same order
        local_groups = [dist.new_group(list(range(n * args.gpus, (n + 1) * args.gpus)))
                        for n in range(args.nnodes)]
        dist.barrier()
        emit({"event": "init", "node_rank": args.node_rank, "rank": rank,
              "init_s": round(time.perf_counter() - t0, 4)})
        for size in [parse_size(s) for s in args.sizes.split(",") if s.strip()]:
            numel = max(1, size // 2)  # bf16
            nbytes = numel * 2
            for phase, group, n in (("local", local_groups[args.node_rank], args.gpus),
                                    ("global", None, world)):
                stage = f"{phase}:{nbytes}"
                t = _time_allreduce(torch, dist, numel, group, args.iters, args.warmup)
                if local == 0 and (phase == "local" or args.node_rank == 0):
                    alg = nbytes / t / 1e9
                    emit({"event": "result", "node_rank": args.node_rank, "phase": phase,
                          "size": nbytes, "ranks": n, "time_us": round(t * 1e6, 2),
                          "algbw_gbps": round(alg, 3), "busbw_gbps": round(busbw(alg, n), 3)})
        stage = "shutdown"
        dist.destroy_process_group()
        return 0
    except Exception as exc:  # reported as data for the controller; the exit code says it failed
        emit({"event": "error", "node_rank": args.node_rank, "rank": rank, "stage": stage,
              "message": f"{type(exc).__name__}: {exc}"[:2000]})
        return 1


def parent(args: argparse.Namespace, argv: list[str]) -> int:
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--worker", str(i)])
             for i in range(args.gpus)]
    deadline = start + args.timeout
    codes: list[int | None] = [None] * len(procs)
    while time.perf_counter() < deadline and any(c is None for c in codes):
        for i, p in enumerate(procs):
            if codes[i] is None:
                codes[i] = p.poll()
        if any(c not in (None, 0) for c in codes):
            break  # one rank failed: the collective cannot finish, stop the rest now
        time.sleep(0.05)
    ok = all(c == 0 for c in codes)
    for i, p in enumerate(procs):  # all at once: a rank whose peer dies first would report that
        if codes[i] is None:
            p.kill()
    for i, p in enumerate(procs):
        if codes[i] is None:
            p.wait()
            emit({"event": "error", "node_rank": args.node_rank,
                  "rank": args.node_rank * args.gpus + i, "stage": "timeout",
                  "message": f"no result within {args.timeout:g} s (a node that never joined, "
                             "or a blocked NCCL port)"})
    emit({"event": "done", "node_rank": args.node_rank, "ok": ok,
          "wall_s": round(time.perf_counter() - start, 3)})
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_args(argv)
    if args.worker is not None:
        return worker(args)
    return parent(args, argv)


if __name__ == "__main__":
    sys.exit(main())
