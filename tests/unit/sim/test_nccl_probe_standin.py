"""The real NCCL probe (tasks/agents/nccl_probe.py), unchanged, run as two "nodes" of two "GPUs"
each on this machine with the lab's torch stand-in (real processes, real TCP rendezvous, timed
collectives), judged by the preflight gate: bandwidth, a slow link, a node that never joins."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from glm5cluster.facts.nccl_probe import ProbeRun, parse_probe
from glm5cluster.tasks import preflight_fabric as F

ROOT = Path(__file__).resolve().parents[3]
PROBE = ROOT / "glm5cluster" / "tasks" / "agents" / "nccl_probe.py"
STANDIN = ROOT / "glm5cluster" / "lab" / "sim" / "gpu" / "torch_standin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_nodes(knobs: list[dict[str, object]], timeout: float = 20, blocked: int | None = None) -> dict[str, ProbeRun]:
    """``blocked``: that node's packets to the rendezvous go nowhere (it dials a port nobody serves,
    as through a firewall that drops them)."""
    port = free_port()
    dead = free_port()
    while dead == port:
        dead = free_port()
    procs = []
    for rank, k in enumerate(knobs):
        master = f"127.0.0.1:{dead if rank == blocked else port}"
        env = {**os.environ, "PYTHONPATH": str(STANDIN), "GLM5LAB_NCCL": json.dumps(k)}
        procs.append(subprocess.Popen(
            [sys.executable, str(PROBE), "--master", master, "--nnodes", str(len(knobs)),
             "--node-rank", str(rank), "--gpus", "2", "--sizes", "1M,64M", "--iters", "4", "--warmup", "1",
             "--timeout", str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
    return {f"n{i}": parse_probe(p.communicate(timeout=timeout + 30)[0]) for i, p in enumerate(procs)}


def test_healthy_pair_reports_busbw_near_the_link() -> None:
    runs = run_nodes([{"busbw_gbps": 20, "local_busbw_gbps": 40}] * 2)
    assert all(r.done and r.ok for r in runs.values()), runs
    v = F.judge_probe(runs, ["n0", "n1"], 5.0, 10.0, 20)
    assert v.problems == [], v.problems
    # the stand-in moves bytes at the configured rate by sleeping: a loaded machine only makes it
    # slower, so only the ceiling (the link) is a fair bound; the floor just says data moved
    assert v.global_busbw is not None and 0 < v.global_busbw <= 21, v.summary
    assert v.slowest is not None and 0 < v.slowest[1] <= 42
    best = runs["n0"].best("global")
    assert best is not None and best.ranks == 4 and best.size == 64 << 20


def test_slow_node_named_by_its_local_phase_and_link_below_threshold() -> None:
    runs = run_nodes([{"busbw_gbps": 4, "local_busbw_gbps": 40}, {"busbw_gbps": 4, "local_busbw_gbps": 6}])
    v = F.judge_probe(runs, ["n0", "n1"], 10.0, 20.0, 20)
    hosts = {(p.host, "across the replica" in p.message) for p in v.problems}
    assert ("n0", True) in hosts and ("n1", False) in hosts, v.problems
    assert v.slowest is not None and v.slowest[0] == "n1"


def test_node_that_cannot_reach_the_rendezvous_is_named() -> None:
    runs = run_nodes([{}, {}], timeout=12, blocked=1)  # room for slow process start on a loaded machine
    assert runs["n0"].timed_out and runs["n1"].timed_out
    assert runs["n0"].reached and not runs["n1"].reached
    v = F.judge_probe(runs, ["n0", "n1"], None, None, 12)
    assert [p.host for p in v.problems] == ["n1"], v.problems
    assert ("n1 never joined the NCCL group within 12 s: it could not open TCP to node 0's probe port "
            "(reached node 0's rendezvous: n0)") in v.problems[0].message


def test_node_whose_gpu_hangs_is_named_alone_with_where_it_stuck() -> None:
    runs = run_nodes([{}, {"never_join": True}], timeout=5)
    assert all(r.timed_out and r.done and not r.ok for r in runs.values())
    assert all(r.wall_s is not None and r.wall_s < 8 for r in runs.values())
    assert runs["n1"].stuck_at == "device" and runs["n0"].stuck_at == "init"
    v = F.judge_probe(runs, ["n0", "n1"], None, None, 5)
    assert [p.host for p in v.problems] == ["n1"], v.problems
    assert ("n1 never joined the NCCL group within 5 s: its GPU never answered (torch.cuda.set_device did "
            "not return) (reached node 0's rendezvous: n0)") in v.problems[0].message
    assert "check nvidia-smi, the driver and the fabric manager on n1" in v.problems[0].fix


def test_group_that_never_forms_although_every_node_reached_is_said_so() -> None:
    """Every node reached node 0 and called NCCL's init, which never completed (NCCL's own ports
    blocked): no node is blamed for not joining; the group is."""
    runs = run_nodes([{}, {"hang_init": True}], timeout=5)
    assert all(r.timed_out and r.stuck_at == "init" for r in runs.values()), runs
    v = F.judge_probe(runs, ["n0", "n1"], None, None, 5)
    assert {p.host for p in v.problems} == {"n0", "n1"}, v.problems
    assert all("every node reached node 0's rendezvous (n0, n1) but the NCCL group did not form within 5 s"
               in p.message and "open NCCL's ports between the nodes" in p.fix for p in v.problems)
    assert not any("never joined" in p.message for p in v.problems)


def test_standin_wheel_installs_with_pip_and_runs_the_probe(tmp_path: Path) -> None:
    """The wheel the lab installs into a host's SGLang venv: pip accepts it, its metadata carries
    the version preflight's spec check reads, and the probe runs on the installed copy."""
    from glm5cluster.lab.sim.gpu.torch_standin.build import build_wheel

    whl = build_wheel(str(tmp_path / "dist"), "2.8.0+glm5lab")
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                          "--disable-pip-version-check", "--target", str(site), whl],
                         capture_output=True, text=True, check=False)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "GLM5LAB_NCCL": "{}"}
    ver = subprocess.run([sys.executable, "-c", "import importlib.metadata as m, torch.version as v; "
                          "print(m.version('torch'), v.__version__)"], capture_output=True, text=True, env=env,
                         check=False)
    assert ver.stdout.split() == ["2.8.0+glm5lab"] * 2, ver.stderr
    out = subprocess.run([sys.executable, str(PROBE), "--master", f"127.0.0.1:{free_port()}", "--nnodes", "1",
                          "--node-rank", "0", "--gpus", "2", "--sizes", "1M", "--iters", "2", "--warmup", "1",
                          "--timeout", "20"], capture_output=True, text=True, env=env, timeout=60, check=False)
    run = parse_probe(out.stdout)
    assert run.done and run.ok and run.best("local") is not None, out.stdout + out.stderr
