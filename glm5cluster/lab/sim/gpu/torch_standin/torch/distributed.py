"""torch.distributed stand-in: a TCP rendezvous at ``init_method`` served by rank 0, collectives
exchanged through it (JSON lines), large all-reduces timed by the host's link knobs."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any

_state: dict[str, Any] = {}


class ReduceOp:
    SUM = "sum"
    MAX = "max"


class Group:
    def __init__(self, gid: int, ranks: list[int]) -> None:
        self.gid, self.ranks, self.seq = gid, ranks, 0


def knobs() -> dict[str, Any]:
    raw = os.environ.get("GLM5LAB_NCCL")
    if raw is None:
        path = os.environ.get("GLM5LAB_NCCL_FILE", "/etc/glm5lab/nccl.json")
        raw = open(path).read() if os.path.exists(path) else "{}"
    out: dict[str, Any] = {"busbw_gbps": 360.0, "local_busbw_gbps": 440.0, "never_join": False, "hang_init": False,
                           "fail": ""}
    out.update(json.loads(raw or "{}"))
    return out


def _serve(sock: socket.socket, world: int) -> None:
    """Rank 0's coordinator: a collective completes when every member of its group arrived."""
    lock = threading.Lock()
    pending: dict[str, list[tuple[socket.socket, float]]] = {}
    sizes: dict[str, int] = {}

    def client(conn: socket.socket) -> None:
        f = conn.makefile("r")
        for line in f:
            msg = json.loads(line)
            key, n = msg["key"], int(msg["n"])
            with lock:
                pending.setdefault(key, []).append((conn, float(msg["value"])))
                sizes[key] = n
                done = len(pending[key]) == n
                if done:
                    arrived = pending.pop(key)
                    reply = {"sum": sum(v for _, v in arrived), "max": max(v for _, v in arrived)}
                    for c, _ in arrived:
                        c.sendall((json.dumps(reply) + "\n").encode())

    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=client, args=(conn,), daemon=True).start()


def init_process_group(backend: str, init_method: str, world_size: int, rank: int, timeout: Any = None,
                       device_id: Any = None) -> None:
    k = knobs()
    if k["hang_init"]:  # reached the rendezvous, then NCCL's own connections never come up
        while True:
            time.sleep(3600)
    if k["fail"]:
        raise RuntimeError(str(k["fail"]))
    hostport = init_method.removeprefix("tcp://")
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    limit = timeout.total_seconds() if timeout is not None else 1800.0
    if rank == 0:
        srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, int(port)))
        srv.listen(256)
        threading.Thread(target=_serve, args=(srv, world_size), daemon=True).start()
        _state["server"] = srv
    end = time.monotonic() + limit
    while True:
        try:
            conn = socket.create_connection((host, int(port)), timeout=5)
            conn.settimeout(None)
            break
        except OSError:
            if time.monotonic() > end:
                raise RuntimeError(f"DistNetworkError: timed out connecting to {hostport}") from None
            time.sleep(0.1)
    _state.update(conn=conn, file=conn.makefile("r"), rank=rank, world=Group(-1, list(range(world_size))),
                  groups=0, knobs=k)
    barrier()


def new_group(ranks: list[int]) -> Group:
    _state["groups"] += 1
    return Group(_state["groups"], list(ranks))


def _exchange(group: Group | None, value: float) -> dict[str, float]:
    g = group or _state["world"]
    g.seq += 1
    msg = {"key": f"{g.gid}:{g.seq}", "n": len(g.ranks), "value": value}
    _state["conn"].sendall((json.dumps(msg) + "\n").encode())
    reply: dict[str, float] = json.loads(_state["file"].readline())
    return reply


def barrier(group: Group | None = None) -> None:
    _exchange(group, 0.0)


def all_reduce(tensor: Any, op: str = ReduceOp.SUM, group: Group | None = None) -> None:
    g = group or _state["world"]
    n = len(g.ranks)
    if tensor.numel() > 1 and n > 1:  # the data phase: bytes * 2(n-1)/n over the link's busbw
        bw = _state["knobs"]["busbw_gbps" if group is None else "local_busbw_gbps"]
        time.sleep(tensor.nbytes() * 2 * (n - 1) / n / (float(bw) * 1e9))
    reply = _exchange(group, tensor.values[0] if tensor.values else 0.0)
    if tensor.numel() == 1:
        tensor.values = [reply["max" if op == ReduceOp.MAX else "sum"]]


def destroy_process_group() -> None:
    barrier()
    if "server" in _state:
        time.sleep(0.2)  # the others read their last reply before the coordinator goes
    _state["conn"].close()
