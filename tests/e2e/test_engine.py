"""The engine over real SSH against the rehearsal lab.

Own lab name and subnet so this module runs beside the others.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Lab, MakeLab

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
CONVERGE = ROOT / "playbooks" / "converge.yaml"
LAB_NAME = "engine"
SUBNET = "172.28.81.0/24"


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Lab:
    return make_lab(LAB_NAME, hosts=4, subnet=SUBNET, sudo_user_hosts=1)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    # an empty HOME: no ~/.ssh/known_hosts or ~/.ssh/config of this machine leaks in
    return {**os.environ, "HOME": str(home), "GLM5CLUSTER_HOME": str(tmp_path / "g5")}


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glm5cluster", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def recap_lines(out: str) -> dict[str, str]:
    got = {}
    for line in out.splitlines():
        m = re.match(r"^\s+(node-\d+)\s+(ok|FAILED|UNREACHABLE)\s+(.*)$", line)
        if m:
            got[m.group(1)] = f"{m.group(2)} {m.group(3)}"
    return got


def test_converge_rerun_and_check(lab: Lab, env: dict[str, str]) -> None:
    inv = str(lab.inventory)
    users = {h["name"]: (h.get("ssh") or {}).get("user") for h in yaml.safe_load(lab.inventory.read_text())["hosts"]}
    assert "glm5" in users.values() or any(u and u != "root" for u in users.values()), users

    first = cli(env, "run", inv, str(CONVERGE), "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert set(recap_lines(first.stdout)) == set(lab.hosts)  # the non-root sudo host included
    assert all(r.startswith("ok") for r in recap_lines(first.stdout).values())

    second = cli(env, "run", inv, str(CONVERGE), "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    recap = recap_lines(second.stdout)
    assert all("changed=0" in r and "ok=7" in r for r in recap.values()), second.stdout

    # without --yes and without a terminal: a converged run needs no confirmation
    assert cli(env, "run", inv, str(CONVERGE)).returncode == 0

    rc, _ = lab.exec("node-2", "echo EXTRA=1 >> /etc/glm5cluster/bench.env")
    assert rc == 0
    check = cli(env, "run", inv, str(CONVERGE), "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    changed = {h: r for h, r in recap_lines(check.stdout).items() if "would-change=0" not in r}
    assert list(changed) == ["node-2"] and "would-change=1" in changed["node-2"], check.stdout
    assert "[env file] node-2: update /etc/glm5cluster/bench.env" in check.stdout
    rc, out = lab.exec("node-2", "cat /etc/glm5cluster/bench.env")
    assert "EXTRA=1" in out  # --check left it in place

    refused = cli(env, "run", inv, str(CONVERGE))  # changes, no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    rc, out = lab.exec("node-2", "cat /etc/glm5cluster/bench.env")
    assert "EXTRA=1" in out

    fixed = cli(env, "run", inv, str(CONVERGE), "--yes")
    assert fixed.returncode == 0 and "changed=1" in recap_lines(fixed.stdout)["node-2"]


def test_exec_prints_every_host(lab: Lab, env: dict[str, str]) -> None:
    ok = cli(env, "exec", str(lab.inventory), "--", "hostname")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for host in lab.hosts:
        assert re.search(rf"^{host}\s* \| exit 0", ok.stdout, re.M), ok.stdout
    bad = cli(env, "exec", str(lab.inventory), "--limit", "node-1,node-2", "--", "echo oops >&2; exit 3")
    assert bad.returncode == 1 and "node-1 | exit 3" in bad.stdout and "node-3" not in bad.stdout


def _inventory_with_known_hosts(lab: Lab, tmp_path: Path, known: Path) -> Path:
    data = yaml.safe_load(lab.inventory.read_text())
    data["ssh"]["known_hosts"] = str(known)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    return inv


def test_unknown_host_key_refused_unless_accepted(lab: Lab, env: dict[str, str], tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    inv = _inventory_with_known_hosts(lab, tmp_path, known)
    refused = cli(env, "exec", str(inv), "--limit", "node-1", "--", "true")
    assert refused.returncode == 1
    assert "unknown" in refused.stdout and "SHA256:" in refused.stdout
    assert "--accept-new-host-keys" in refused.stdout and "ssh-keyscan" in refused.stdout
    assert not known.exists() or not known.read_text().strip()

    accepted = cli(env, "exec", str(inv), "--accept-new-host-keys", "--", "true")
    assert accepted.returncode == 0, accepted.stdout
    assert len(known.read_text().splitlines()) == len(lab.hosts)
    again = cli(env, "exec", str(inv), "--", "true")  # now strict and known
    assert again.returncode == 0


def test_changed_host_key_refused(lab: Lab, env: dict[str, str]) -> None:
    save = "mkdir -p /root/keys.bak && cp -p /etc/ssh/ssh_host_* /root/keys.bak/"
    recreate = "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh"
    restore = "cp -p /root/keys.bak/* /etc/ssh/ && systemctl restart ssh"
    assert lab.exec("node-3", save)[0] == 0
    try:
        assert lab.exec("node-3", recreate)[0] == 0
        for extra in ([], ["--accept-new-host-keys"]):
            out = cli(env, "run", str(lab.inventory), str(CONVERGE), "--yes", "--limit", "node-3", *extra)
            assert out.returncode == 1, out.stdout
            assert "CHANGED" in out.stdout and "ssh-keygen -R" in out.stdout, out.stdout
            assert "UNREACHABLE" in out.stdout
    finally:
        assert lab.exec("node-3", restore)[0] == 0
    assert cli(env, "exec", str(lab.inventory), "--limit", "node-3", "--", "true").returncode == 0


def test_host_stopped_mid_run_is_unreachable(lab: Lab, env: dict[str, str], tmp_path: Path) -> None:
    pb = tmp_path / "slow.yaml"
    new_dir = f"/var/lib/glm5-e2e-{time.time_ns()}"  # a change on every host in the last step
    pb.write_text(
        "name: slow\nsteps:\n"
        "  - {name: facts, task: facts}\n"
        "  - {name: wait, task: command, hosts: 'host:node-1', params: {cmd: 'sleep 6', changes: true}}\n"
        f"  - {{name: dir, task: directory, params: {{path: {new_dir}, mode: '0755'}}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "glm5cluster", "run", str(lab.inventory), str(pb), "--yes"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # the run is inside the `wait` step now
        lab.container("node-3").stop(timeout=2)  # type: ignore[attr-defined]
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        lab.container("node-3").start()  # type: ignore[attr-defined]
    assert proc.returncode == 1, out + err
    recap = recap_lines(out)
    assert recap["node-3"].startswith("UNREACHABLE"), out
    assert all(recap[h].startswith("ok") for h in ("node-1", "node-2", "node-4")), out
    m = re.search(r"^logs: (\S+)$", out, re.M)
    assert m and Path(m.group(1), "node-3.log").exists()
    # the host comes back: the next run reaches it again
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if cli(env, "exec", str(lab.inventory), "--limit", "node-3", "--", "true").returncode == 0:
            break
        time.sleep(2)
