"""Lab e2e for the GPU stack, the SGLang runtimes and the weights.

One lab of 4 H200 hosts + the mirror (apt repository of stand-in packages, registry, package
index, model hub requiring a token). node-1 has no driver at all; node-2 runs the driver the
mirror's newest packages carry (so replica 0 keeps driver parity). The tests run in file order
and share the lab; each states what it relies on.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Lab

pytestmark = pytest.mark.lab

NAME, SUBNET = "stackw", "172.28.87.0/24"
TOKEN = "hf_lab_secret_0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
STACK = str(ROOT / "playbooks" / "stack.yaml")
WEIGHTS = str(ROOT / "playbooks" / "weights.yaml")
WDIR = "/srv/models/GLM-5"
NEW_DRIVER = "580.159.04"  # the newest R580 stand-in on the mirror, and the lab default


def make(make_lab: Any, rate: float = 0.0) -> Lab:
    lab: Lab = make_lab(NAME, hosts=4, subnet=SUBNET, mirror=True, hub_shards=8, hub_shard_mb=2.0,
                        hub_rate_mbps=rate, hub_token=TOKEN,
                        overrides=["node-1:driver=none", f"node-2:driver={NEW_DRIVER}"])
    return lab


@pytest.fixture(scope="module")
def lab(make_lab: Any) -> Lab:
    return make(make_lab)


def variant(lab: Lab, name: str, **serving: Any) -> str:
    doc = yaml.safe_load(lab.inventory.read_text())
    doc["serving"].update(serving)
    path = lab.dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def cli_env(token: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    if token:
        env["HF_TOKEN"] = TOKEN
    return env


def run(inv: str | Path, playbook: str, *args: str, token: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glm5cluster", "run", str(inv), playbook, "--yes", *args],
                          capture_output=True, text=True, env=cli_env(token), timeout=600, cwd=ROOT)


def out(r: subprocess.CompletedProcess[str]) -> str:
    return r.stdout + r.stderr


def sh(lab: Lab, host: str, cmd: str) -> str:
    rc, text = lab.exec(host, cmd)
    assert rc == 0, f"{host}: {cmd}: {text}"
    return text


def recap_changed(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(node-\d+)\s+\S+\s+ok=\d+\s+changed=(\d+)", text, re.M)}


def hub_log(lab: Lab) -> list[dict[str, Any]]:
    rc, text = lab.client.containers.get(f"glm5lab-{NAME}-mirror").exec_run(  # type: ignore[attr-defined]
        ["cat", "/var/log/glm5lab-mirror/hub-requests.log"])
    return [json.loads(ln) for ln in text.decode().splitlines() if ln.strip()]


def downloads(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if "/resolve/" in e["path"] and e["method"] == "GET"]


def wipe(lab: Lab) -> None:
    for h in lab.hosts:
        sh(lab, h, f"rm -rf {WDIR}")


# ---------------------------------------------------------------- GPU stack

def test_bare_host_gets_a_verified_stack_reboot_only_when_allowed_then_no_change(lab: Lab) -> None:
    limit = ("--limit", "node-1,node-2")
    first = run(lab.inventory, STACK, *limit)
    assert first.returncode != 0
    text = out(first)
    assert re.search(r"node-1 needs a reboot \(.*\); not rebooting without --allow-reboot", text), text
    assert "node-2 needs a reboot" not in text
    # the real install path ran: apt from the mirror's CUDA repository, signed by its key
    assert NEW_DRIVER in sh(lab, "node-1", "dpkg-query -W -f='${Version}' nvidia-driver-580-open")
    sources = sh(lab, "node-1", "cat /etc/apt/sources.list.d/cuda-debian12-x86_64.list")
    assert "signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg" in sources and lab.subnet[:-4] in sources
    assert "nvidia.com" not in sources
    assert "nvidia-driver-580-open" in sh(lab, "node-1", "apt-mark showhold")

    boots = sh(lab, "node-1", "cat /run/glm5lab/booted")
    second = run(lab.inventory, STACK, *limit, "--allow-reboot")
    assert second.returncode == 0, out(second)
    assert f"rebooted; loaded driver {NEW_DRIVER} matches installed" in out(second)
    assert sh(lab, "node-1", "cat /run/glm5lab/booted") != boots  # the host really restarted
    assert sh(lab, "node-1", "cat /run/glm5lab/loaded-driver").strip() == NEW_DRIVER
    assert sh(lab, "node-1", "systemctl is-active nvidia-fabricmanager nvidia-persistenced").split() == ["active"] * 2

    third = run(lab.inventory, STACK, *limit)
    assert third.returncode == 0, out(third)
    assert recap_changed(third.stdout) == {"node-1": 0, "node-2": 0}, third.stdout


def test_both_runtimes_from_the_mirrors_and_an_unknown_flag_refused_before_weights(lab: Lab) -> None:
    limit = ("--limit", "node-1,node-2")
    # venv: pip from the lab index (the stack test above installed it; prove where it came from)
    assert "0.5.23" in sh(lab, "node-1", "/opt/glm5cluster/venv/bin/python -m pip show sglang | grep ^Version")
    docker_inv = variant(lab, "docker", runtime="docker")
    r = run(docker_inv, STACK, *limit)
    assert r.returncode == 0, out(r)
    assert "pull lmsysorg/sglang:v0.5.23 from mirror" in r.stdout
    for h in ("node-1", "node-2"):
        tags = sh(lab, h, "docker image inspect -f '{{json .RepoTags}}' lmsysorg/sglang:v0.5.23")
        assert "lmsysorg/sglang:v0.5.23" in tags  # tagged as the plain name
        assert '"nvidia"' in sh(lab, h, "cat /etc/docker/daemon.json")  # nvidia-ctk runtime configure
    again = run(docker_inv, STACK, *limit)
    assert again.returncode == 0 and recap_changed(again.stdout) == {"node-1": 0, "node-2": 0}, out(again)

    # The inventory pins a launch-era SGLang (0.5.9) whose --nsa-* flags our own validator
    # accepts, but the image it names is 0.5.23: the installed parser must refuse the flag.
    old = variant(lab, "docker-old", runtime="docker", sglang_version="0.5.9", image="lmsysorg/sglang:v0.5.23",
                  extra_args=["--nsa-decode-backend", "flashmla_kv"])
    wipe(lab)
    r = run(old, STACK, *limit)
    assert r.returncode != 0
    assert "SGLang 0.5.23 installed on node-1 does not know --nsa-decode-backend" in r.stdout, out(r)
    rc, _ = lab.exec("node-1", f"test -e {WDIR}")
    assert rc != 0  # no weight was fetched


# ---------------------------------------------------------------- weights

def test_weights_fan_out_to_4_nodes_verified_then_instant(lab: Lab) -> None:
    wipe(lab)
    before = len(hub_log(lab))
    r = run(lab.inventory, WEIGHTS, token=True)
    assert r.returncode == 0, out(r)
    assert "fetched 15 files" in r.stdout and "from hub" in r.stdout
    assert len(re.findall(r"from peer node-\d", r.stdout)) == 3, r.stdout
    got = downloads(hub_log(lab)[before:])
    assert {e["client"] for e in got} == {lab.addresses["node-1"]}  # fetched once, from the seed
    assert all(e["auth"] for e in got)  # the token reached the hub
    for h in lab.hosts:
        assert "files" in sh(lab, h, f"cat {WDIR}/.glm5cluster-manifest.json")
        sh(lab, h, f"cd {WDIR} && test $(ls *.safetensors | wc -l) = 8")
        assert "glm5cluster-ephemeral" not in sh(lab, h, "cat ~/.ssh/authorized_keys 2>/dev/null; true")
        sh(lab, h, f"test ! -e {WDIR}/.glm5cluster/agent.pid")  # removed once the agent ended
    second = run(lab.inventory, WEIGHTS, "-v", token=True)
    assert second.returncode == 0 and set(recap_changed(second.stdout).values()) == {0}, out(second)
    assert "verified by stamp" in second.stdout


def test_one_corrupted_shard_is_the_only_file_fetched_again(lab: Lab) -> None:
    shard = sh(lab, "node-3", f"ls {WDIR}/*.safetensors | sed -n 3p").strip()
    sh(lab, "node-3", f"printf X | dd of={shard} bs=1 seek=100 conv=notrunc 2>/dev/null; touch -d '2001-01-01' {shard}")
    before = len(hub_log(lab))
    r = run(lab.inventory, WEIGHTS, "--verify-weights", token=True)
    assert r.returncode == 0, out(r)
    changed = [ln for ln in r.stdout.splitlines() if "fetched" in ln]
    assert len(changed) == 1 and "node-3" in changed[0] and "fetched 1 files" in changed[0], r.stdout
    assert not downloads(hub_log(lab)[before:])  # repaired from a peer, not the hub
    sh(lab, "node-3", f"cd {WDIR} && python3 -c \"import hashlib,sys;print(hashlib.sha256(open('{shard}','rb').read()).hexdigest())\"")


def test_killed_download_resumes_and_token_never_leaks(lab: Lab, make_lab: Any) -> None:
    tools = lab.dir / "tools.yaml"
    tools.write_text("name: tools\nsteps:\n  - {name: weights tools, task: weights.tools}\n")
    assert run(lab.inventory, str(tools), "--limit", "node-1").returncode == 0
    make(make_lab, rate=16.0)  # the hub link slowed to 16 Mbit/s: 16 MiB take ~8 s
    try:
        wipe(lab)
        proc = subprocess.Popen([sys.executable, "-m", "glm5cluster", "run", str(lab.inventory), WEIGHTS, "--yes",
                                 "--limit", "node-1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=cli_env(True), cwd=ROOT)
        part = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rc, text = lab.exec("node-1", f"find {WDIR}/.glm5cluster/partial -name '*.part' -size +256k 2>/dev/null")
            if text.strip():
                part = text.split()[0]
                break
            time.sleep(0.3)
        assert part, "no partial download appeared"
        # while it downloads: the token is in no process's argv on the node
        half = len(TOKEN) // 2  # the probe's own argv must not hold the whole token
        probe = (f"import glob\nt = {TOKEN[:half]!r} + {TOKEN[half:]!r}\nfor p in glob.glob('/proc/[0-9]*/cmdline'):\n"
                 "    try:\n        hit = t.encode() in open(p, 'rb').read()\n    except OSError:\n"
                 "        hit = False\n    if hit:\n        print(p)\n")
        assert "glm5-weights-agent" in sh(lab, "node-1", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
        assert sh(lab, "node-1", f"python3 -c {shlex.quote(probe)}").strip() == ""
        sh(lab, "node-1", f"kill -9 $(cat {WDIR}/.glm5cluster/agent.pid)")
        first, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0 and "a re-run resumes" in first, first
        have = int(sh(lab, "node-1", f"stat -c %s {part}"))
        before = len(hub_log(lab))
        r = run(lab.inventory, WEIGHTS, "--limit", "node-1", token=True)
        assert r.returncode == 0, out(r)
        ranged = [e for e in downloads(hub_log(lab)[before:]) if e.get("range")]
        assert any(e["range"] == f"bytes={have}-" for e in ranged), ranged
    finally:
        make(make_lab)
    # The token: no file on any host (journal included), no run log on this machine
    for h in lab.hosts:
        _, found = lab.exec(h, f"grep -rlsF {TOKEN} / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; "
                               f"journalctl --no-pager 2>/dev/null | grep -cF {TOKEN}; true")
        assert found.split() == ["0"], f"{h}: token found in {found}"
    logs = Path(os.environ.get("GLM5CLUSTER_HOME", Path.home() / ".glm5cluster")) / "runs"
    leaked = subprocess.run(["grep", "-rlsF", TOKEN, str(logs)], capture_output=True, text=True)
    assert leaked.stdout == "", leaked.stdout


def test_too_small_disk_refused_before_any_download(lab: Lab) -> None:
    wipe(lab)
    sh(lab, "node-4", f"mkdir -p {WDIR} && mount -t tmpfs -o size=8m glm5-small {WDIR}")
    try:
        before = len(hub_log(lab))
        r = run(lab.inventory, WEIGHTS, token=True)
        assert r.returncode != 0
        assert re.search(r"node-4: not enough disk at /srv/models/GLM-5: need [\d.]+ MiB .* free 8\.0 MiB", r.stdout), r.stdout
        assert not downloads(hub_log(lab)[before:])
        for h in ("node-1", "node-2", "node-3"):
            rc, _ = lab.exec(h, f"ls {WDIR}/*.safetensors")
            assert rc != 0
    finally:
        lab.exec("node-4", f"umount {WDIR}")
