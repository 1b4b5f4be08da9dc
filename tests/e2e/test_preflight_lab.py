"""`glm5cluster preflight` in the lab: the per-check, per-node table (and JSON) of a healthy
2-node cluster in under 30 s, the NCCL gate run for real (the real probe, uploaded, run by the
SGLang venv's python with the lab's torch stand-in installed in it), and every field fault named
before any launch with node, cause and fix:

- a node whose route to the head leaves through another interface (an extra link and a /32 route);
- a blocked high port (iptables DROP on 45000 in the host; where the lab host has no netfilter,
  an `ip rule ... prohibit`: both real packet drops/rejects) while the dist-init port is open;
- a duplicate host name; a pinned interface missing on one node;
- a small /dev/shm: the host's tmpfs remounted small, seen by the venv runtime and in the
  container spec (the docker runtime, its image from the lab registry: --ipc host shares it);
- a version mismatch on one node (another torch build installed in its venv);
- a busy GPU (a live process the GPU simulator lists as a compute app);
- a probe that hangs on one node (the torch stand-in's never_join, a GPU that never answers: bounded by
  the gate's timeout, only that node named);
- a link below the threshold (the stand-in's link knobs: one node's NVLink, the replica's network).

One lab (p1, 2 x 8 H200, mirror for the package index, registry and hub), prepared once by the
real `glm5cluster run` of up.yaml's steps up to the weights (no preflight, no launch). Each test
injects its fault over `docker exec`, runs the real CLI over SSH, and undoes the fault.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import up_helpers as U

pytestmark = pytest.mark.lab

SUBNET = "172.28.170.0/24"
HEAD_ADDR = "172.28.170.11"
NODE2_ADDR = "172.28.170.12"
VENV = "/opt/glm5cluster/venv"
KNOBS = "/etc/glm5lab/nccl.json"
TORCH = "2.9.1+glm5lab"
SKIP_TASKS = ("preflight", "launch", "readiness", "smoke")  # and router.*: the prep ends before any launch
GATE = {"nccl_sizes": "1M,64M", "nccl_timeout": 30.0,
        # the stand-in times its sleeps, but 16 processes on two loaded cores add their own
        # overhead: the catalog's 431 GB/s is out of reach, so the lab sets its own floor
        "min_local_busbw_gbps": 10.0}


def _put(lab: Any, host: str, path: Path, dest_dir: str = "/tmp") -> str:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(path), arcname=path.name)
    lab.container(host).put_archive(dest_dir, buf.getvalue())
    return f"{dest_dir}/{path.name}"


def install_torch(lab: Any, host: str, version: str) -> None:
    """The torch stand-in (lab/sim/gpu/torch_standin) into the host's SGLang venv, by pip."""
    from glm5cluster.lab.sim.gpu.torch_standin.build import build_wheel

    with tempfile.TemporaryDirectory() as tmp:
        whl = _put(lab, host, Path(build_wheel(tmp, version)))
    rc, out = lab.exec(host, f"{VENV}/bin/python -m pip install --quiet --no-index --no-deps "
                             f"--force-reinstall --disable-pip-version-check {shlex.quote(whl)}")
    assert rc == 0, out


@pytest.fixture(scope="module")
def lab(make_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    lab = make_lab("p1", hosts=2, gpu="H200", subnet=SUBNET, **U.LAB_HUB)
    lab.tmp = tmp_path_factory.mktemp("p1")
    lab.inv = U.inventory(lab, Path(lab.tmp) / "p1.yaml", cluster="p1")
    doc = yaml.safe_load(lab.inv.read_text())
    doc["preflight"] = dict(GATE)
    lab.inv.write_text(yaml.safe_dump(doc, sort_keys=False))
    up = yaml.safe_load(U.UP_PLAYBOOK.read_text())
    prep = {"name": "preflight-lab-prep", "description": "up.yaml up to the weights, no preflight, no launch",
            "steps": [s for s in up["steps"] if s["task"] not in SKIP_TASKS and not s["task"].startswith("router.")]}
    pb = Path(lab.tmp) / "prep.yaml"
    pb.write_text(yaml.safe_dump(prep, sort_keys=False))
    lab.prep = pb
    rc, out, _ = U.cli("run", str(lab.inv), str(pb), "--yes", timeout=600)
    assert rc == 0, out
    for h in lab.hosts:
        install_torch(lab, h, TORCH)
    yield lab
    U.down_lab(lab)


def variant(lab: Any, tag: str, edit: Any) -> Path:
    doc = yaml.safe_load(lab.inv.read_text())
    edit(doc)
    path = Path(lab.tmp) / f"p1-{tag}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def preflight(inv: Path, *args: str, timeout: float = 300) -> tuple[int, dict[str, Any], float]:
    rc, out, secs = U.cli("preflight", str(inv), "--format", "json", *args, timeout=timeout)
    assert rc in (0, 1), out
    doc, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])  # stderr (warnings) follows stdout
    return rc, doc, secs


def failed(doc: dict[str, Any], check: str) -> dict[str, list[tuple[str, str]]]:
    """host -> [(message, fix)] of the failed rows of one check."""
    out: dict[str, list[tuple[str, str]]] = {}
    for r in doc["results"]:
        if r["check"] == check and r["status"] != "ok":
            out.setdefault(r["host"], []).append((r["message"], r["fix"] or ""))
    return out


def named(doc: dict[str, Any], check: str, host: str, cause: str, fix: str) -> None:
    """The check's row of ``host`` failed with ``cause`` in its message and ``fix`` in its fix."""
    rows = failed(doc, check).get(host, [])
    assert any(cause in m and fix in f for m, f in rows), json.dumps(doc, indent=1)


def sh(lab: Any, host: str, cmd: str) -> str:
    rc, out = lab.exec(host, cmd)
    assert rc == 0, f"{host}: {cmd}: {out}"
    return out


def test_healthy_cluster_table_and_json_under_30s(lab: Any) -> None:
    rc, out, secs = U.cli("preflight", str(lab.inv), timeout=120)
    assert rc == 0, out
    lines = out.splitlines()
    assert ["CHECK", "NODE", "RESULT", "DETAIL"] in [ln.split() for ln in lines], out
    for check in ("network", "ports", "gpu", "runtime", "weights", "limits", "fabric", "spec"):
        for host in lab.hosts:
            assert any(ln.split()[:3] == [check, host, "ok"] for ln in lines), (check, host, out)
    assert any(ln.startswith("all checks passed (") for ln in lines), out
    assert secs < 30, f"preflight took {secs:.1f} s: {out}"
    rc, doc, secs = preflight(lab.inv)
    assert rc == 0 and doc["ok"] and len(doc["results"]) == 8 * 2, doc
    assert secs < 30, secs
    spec = {r["host"]: r["message"] for r in doc["results"] if r["check"] == "spec"}
    assert all(f"torch {TORCH}" in m and "GPUs idle" in m for m in spec.values()), spec
    print(f"preflight inventory (2 nodes, 8 checks, no --nccl): {secs:.1f} s")


def test_nccl_gate_runs_in_the_lab(lab: Any) -> None:
    rc, doc, secs = preflight(lab.inv, "--check", "nccl")
    assert rc == 0 and doc["ok"], doc
    head = next(r["message"] for r in doc["results"] if r["host"] == "node-1")
    assert "NCCL busbw" in head and "across 2 nodes" in head and "slowest node" in head, head
    print(f"preflight --check nccl: {secs:.1f} s; {head}")


def test_route_through_another_interface_is_named(lab: Any) -> None:
    add = ("ip link add pf0 type dummy 2>/dev/null || ip link add pf0 type veth peer name pf1; "
           f"ip addr add 10.250.0.2/24 dev pf0 && ip link set pf0 up && ip route add {HEAD_ADDR}/32 dev pf0")
    sh(lab, "node-2", add)
    try:
        assert "dev pf0" in sh(lab, "node-2", f"ip route get {HEAD_ADDR}")
        _, doc, _ = preflight(lab.inv, "--check", "fabric")
    finally:
        sh(lab, "node-2", "ip link del pf0")
    named(doc, "fabric", "node-2", f"traffic to the head node-1 ({HEAD_ADDR}) leaves through pf0, but NCCL/Gloo "
          "are pinned to eth0", f"fix the route on node-2 (ip route get {HEAD_ADDR})")
    assert "node-1" not in failed(doc, "fabric"), doc


def block_port(lab: Any, host: str, port: int) -> str:
    """Drop TCP to ``port`` on ``host``: iptables (nft or legacy backend); where netfilter is not
    available in the lab host, a policy-routing rule that rejects those packets (``ip rule ...
    prohibit``). Either is a real packet drop/reject. Returns the command that undoes it."""
    rule = f"INPUT -p tcp --dport {port} -j DROP"
    for tool in ("iptables", "iptables-legacy"):
        rc, out = lab.exec(host, f"{tool} -I {rule} && {tool} -S INPUT")
        if rc == 0 and f"--dport {port}" in out:
            print(f"blocked {host}:{port} with {tool}")
            return f"{tool} -D {rule}"
    sh(lab, host, f"ip rule add ipproto tcp dport {port} prohibit priority 90")
    print(f"blocked {host}:{port} with ip rule prohibit (no netfilter in the lab host)")
    return f"ip rule del ipproto tcp dport {port} prohibit priority 90"


def test_blocked_high_port_with_dist_init_open_is_named(lab: Any) -> None:
    undo = block_port(lab, "node-2", 45000)
    try:
        _, doc, _ = preflight(lab.inv, "--check", "fabric", "--check", "network")
    finally:
        sh(lab, "node-2", undo)
    named(doc, "fabric", "node-1", f"cannot reach node-2 at {NODE2_ADDR}:45000 (NCCL range) over TCP",
          "check firewalls on node-2 (iptables -S)")
    everything = json.dumps(failed(doc, "fabric")) + json.dumps(failed(doc, "network"))
    assert ":20000" not in everything, everything  # the dist-init port answers both ways
    assert not failed(doc, "network"), doc


def test_duplicate_host_name_is_named(lab: Any) -> None:
    sh(lab, "node-2", "hostname node-1")
    try:
        _, doc, _ = preflight(lab.inv, "--check", "fabric")
    finally:
        sh(lab, "node-2", "hostname node-2")
    named(doc, "fabric", "node-2", "host name 'node-1' is also the host name of node-1",
          "give node-2 a unique host name (hostnamectl set-hostname)")


def test_pinned_interface_missing_on_one_node_is_named(lab: Any) -> None:
    def pin(doc: dict[str, Any]) -> None:
        doc["hosts"][1]["interface"] = "ens9f0"

    _, doc, _ = preflight(variant(lab, "pin", pin), "--check", "fabric", "--check", "network")
    named(doc, "fabric", "node-2", "pinned interface ens9f0 does not exist on node-2",
          "set hosts[node-2].interface to one of its interfaces")
    named(doc, "network", "node-2", "cluster interface ens9f0 does not exist",
          "set hosts[].interface / cluster.interface to the cluster-network NIC")
    assert "node-1" not in failed(doc, "fabric"), doc


def test_small_dev_shm_is_named(lab: Any) -> None:
    sh(lab, "node-2", "mount -o remount,size=64m /dev/shm")
    try:
        _, doc, _ = preflight(lab.inv, "--check", "spec")
    finally:
        sh(lab, "node-2", "mount -o remount,size=8g /dev/shm")
    named(doc, "spec", "node-2", "/dev/shm is 64 MiB for the venv runtime (NCCL needs >= 1 GiB)",
          "raise the /dev/shm tmpfs on node-2")
    assert "node-1" not in failed(doc, "spec"), doc


def test_version_mismatch_on_one_node_is_named(lab: Any) -> None:
    install_torch(lab, "node-2", "2.8.0+glm5lab")
    try:
        _, doc, _ = preflight(lab.inv, "--check", "spec")
    finally:
        install_torch(lab, "node-2", TORCH)
    named(doc, "spec", "node-2", f"torch 2.8.0+glm5lab differs from the replica's {TORCH}",
          "every node must run the same build")
    assert "node-1" not in failed(doc, "spec"), doc


def test_busy_gpu_is_named(lab: Any) -> None:
    pid = sh(lab, "node-2", "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!").strip()
    knob = ("import json, sys; p = '/etc/glm5lab/gpu.json'; d = json.load(open(p)); "
            "d['compute_apps'] = [{'pid': int(sys.argv[1]), 'name': 'python3', 'used_mib': 70000, 'gpu': 3}] "
            "if sys.argv[1] != '-' else []; open(p, 'w').write(json.dumps(d))")
    sh(lab, "node-2", f"python3 -c {shlex.quote(knob)} {pid}")
    try:
        _, doc, _ = preflight(lab.inv, "--check", "spec")
    finally:
        sh(lab, "node-2", f"kill {pid}; python3 -c {shlex.quote(knob)} -")
    named(doc, "spec", "node-2", f"GPUs are busy: python3 (pid {pid}, 70000 MiB)",
          "stop those processes on node-2 (nvidia-smi shows them) before launching")
    assert "node-1" not in failed(doc, "spec"), doc


def set_knobs(lab: Any, host: str, knobs: dict[str, Any] | None) -> None:
    if knobs is None:
        sh(lab, host, f"rm -f {KNOBS}")
    else:
        sh(lab, host, f"printf %s {shlex.quote(json.dumps(knobs))} > {KNOBS}")


def test_probe_hanging_on_one_node_is_bounded_and_named(lab: Any) -> None:
    set_knobs(lab, "node-2", {"never_join": True})
    t0 = time.monotonic()
    try:
        _, doc, _ = preflight(lab.inv, "--check", "nccl")
    finally:
        set_knobs(lab, "node-2", None)
    took = time.monotonic() - t0
    named(doc, "nccl", "node-2", "node-2 never joined the NCCL group within 30 s: its GPU never answered",
          "check nvidia-smi, the driver and the fabric manager on node-2")
    assert "node-1" not in failed(doc, "nccl"), doc  # it waited for node-2: not to blame
    assert took < 30 + 40, took  # the probe's own timeout bounds the hang (plus SSH and process start)
    assert not lab.exec("node-2", "pgrep -af '[n]ccl_probe.py'")[1].strip(), "a probe worker outlived the gate"


def test_link_below_threshold_is_named(lab: Any) -> None:
    def floor(doc: dict[str, Any]) -> None:
        doc["preflight"]["min_busbw_gbps"] = 10.0

    set_knobs(lab, "node-2", {"busbw_gbps": 2, "local_busbw_gbps": 2})
    try:
        _, doc, _ = preflight(variant(lab, "floor", floor), "--check", "nccl")
    finally:
        set_knobs(lab, "node-2", None)
    # node-2's own GPUs (NVLink) below the floor (preflight.min_local_busbw_gbps)
    named(doc, "nccl", "node-2", "all-reduce busbw among node-2's own GPUs",
          "check NVLink (nvidia-smi nvlink -s), the fabric manager and GPU clocks")
    assert "is below 10.0 GB/s" in json.dumps(failed(doc, "nccl")["node-2"]), doc
    # the replica's network (node 0 measures it) below the inventory's minimum
    named(doc, "nccl", "node-1", "all-reduce busbw across the replica",
          "check the RDMA NICs (ibstat), NCCL_IB_HCA")
    assert "is below 10.0 GB/s" in json.dumps(failed(doc, "nccl")["node-1"]), doc


def test_small_dev_shm_in_the_container_spec_is_named(lab: Any) -> None:
    """The docker runtime: the same prep (docker engine, container toolkit, the image from the
    lab registry), then the spec check runs the image with the server's own `docker run` flags.
    Those include --ipc host, so the container's /dev/shm is the host's (measured here: a
    `serving.shm_size` of 64m changes nothing), and a small host tmpfs is what it sees."""
    def docker(doc: dict[str, Any]) -> None:
        doc["serving"].update(runtime="docker", memlock_unlimited=False, shm_size="64m")

    inv = variant(lab, "docker", docker)
    rc, out, _ = U.cli("run", str(inv), str(lab.prep), "--yes", timeout=600)
    assert rc == 0, out
    _, doc, _ = preflight(inv, "--check", "spec")
    assert "/dev/shm" not in json.dumps(failed(doc, "spec")), doc  # --shm-size 64m: no effect under --ipc host
    sh(lab, "node-2", "mount -o remount,size=64m /dev/shm")
    try:
        _, doc, _ = preflight(inv, "--check", "spec")
    finally:
        sh(lab, "node-2", "mount -o remount,size=8g /dev/shm")
    named(doc, "spec", "node-2", "/dev/shm is 64 MiB in the container spec (NCCL needs >= 1 GiB)",
          "raise the /dev/shm tmpfs on node-2")
    assert "/dev/shm" not in json.dumps(failed(doc, "spec").get("node-1", [])), doc
