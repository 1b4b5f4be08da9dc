"""Ctrl-C and the run lock on a 2-node H200 lab, with the real CLI process (SIGINT, as a
terminal's Ctrl-C delivers it):

- a second `up` while the first runs is refused, naming the first run (user@host, pid, command);
- Ctrl-C during weights staging: exit 130, each host's state named, the run's transfer key gone
  from authorized_keys, no weights agent left on any node, the run lock released;
- Ctrl-C once the replica is being launched: exit 130, state named, lock released; the next
  `up` finishes (a re-run picks up from where the hosts are).

One lab for the module (its own name and subnet); tests run in order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import up_helpers as U

pytestmark = pytest.mark.lab

SUBNET = "172.28.115.0/24"
CLUSTER = "d1"
LOCK = f"/var/lib/glm5cluster/locks/{CLUSTER}.lock"
AGENT = "glm5-weights-agent"
# pgrep -f pattern for the agent that does not match the `sh -c` running pgrep itself
AGENT_RE = "'[g]lm5-weights-agent'"


@pytest.fixture(scope="module")
def lab(make_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # a slow hub link (8 Mbit/s for 4 x 3 MB): staging lasts long enough to interrupt it
    lab = make_lab("d1", hosts=2, gpu="H200", subnet=SUBNET, mirror=True, hub_shards=4, hub_shard_mb=3.0,
                   hub_rate_mbps=8.0)
    lab.tmp = tmp_path_factory.mktemp("d1")
    lab.pb = U.playbook_args(lab.tmp)
    lab.inv = U.inventory(lab, Path(lab.tmp) / "d1.yaml", cluster=CLUSTER,
                          env={"SGLANG_SIM_LOAD_SECONDS": "20"})  # launch/readiness lasts a while
    yield lab
    U.cli("down", str(lab.inv), "--yes", "--break-lock", timeout=300)
    U.down_lab(lab)


def _sigint_default() -> None:
    # a test run started in the background (`cmd &`) inherits SIGINT ignored, and Python keeps an
    # inherited SIG_IGN: the CLI must get SIGINT as it does from a terminal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_up(lab: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "glm5cluster", "up", str(lab.inv), "--yes", *lab.pb],  # noqa: S603
                            cwd=U.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"}, preexec_fn=_sigint_default)  # noqa: PLW1509


def wait_for(what: str, check: Any, proc: subprocess.Popen[str], timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"`up` ended (exit {proc.returncode}) before {what}:\n{out}")
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"no {what} within {timeout}s")


def ctrl_c(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"`up` did not end within {timeout}s of Ctrl-C:\n{out}")
    return proc.returncode, out, time.monotonic() - t0


def sh(lab: Any, host: str, cmd: str) -> str:
    return lab.exec(host, cmd)[1]


def no_agent_within(lab: Any, host: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while lab.exec(host, f"pgrep -f {AGENT_RE}")[0] == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_second_up_is_refused_then_ctrl_c_during_weights_cleans_up(lab: Any) -> None:
    proc = start_up(lab)
    try:
        wait_for("run lock", lambda: lab.exec("node-1", f"test -s {LOCK}")[0] == 0, proc)
        rc, out, _ = U.up(lab.inv, lab.pb)
        assert rc == 1, out
        assert f"cluster '{CLUSTER}' is locked by another run" in out and f"(pid {proc.pid})" in out, out
        assert "glm5cluster up" in out and "--break-lock" in out, out
        # staging: an agent runs on both nodes and node-1 serves node-2 with the run's key
        wait_for("weights transfer", lambda: all(
            lab.exec(h, f"pgrep -f {AGENT_RE}")[0] == 0 for h in lab.hosts)
            and "glm5cluster-ephemeral" in sh(lab, "node-1", "cat /root/.ssh/authorized_keys"), proc)
        rc, out, secs = ctrl_c(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, out
    assert "interrupted (Ctrl-C) during step 'weights'" in out, out
    assert "state of each host after the interrupt:" in out, out
    assert "in step 'weights' when interrupted (may be partly done); last completed step 'weights tools'" in out, out
    assert "internal error" not in out and "KeyboardInterrupt" not in out and "Traceback" not in out, out
    assert secs < 60, out
    for h in lab.hosts:  # a source's `serve` (under sshd) ends at its next heartbeat to the gone receiver
        assert no_agent_within(lab, h, 10), sh(lab, h, f"ps -ef | grep {AGENT}")
    assert "glm5cluster-ephemeral" not in sh(lab, "node-1", "cat /root/.ssh/authorized_keys")
    assert lab.exec("node-1", f"test -e {LOCK}")[0] != 0  # released


def test_ctrl_c_during_launch_names_the_state_and_a_rerun_serves(lab: Any) -> None:
    proc = start_up(lab)
    unit = f"glm5-{CLUSTER}-r0"
    try:  # the weights finish (resumed), then the replica is started: interrupt it there
        wait_for("launch", lambda: lab.exec("node-1", f"systemctl is-active -q {unit}")[0] == 0, proc, timeout=600)
        rc, out, _ = ctrl_c(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, out
    assert ("interrupted (Ctrl-C) during step 'launch'" in out
            or "interrupted (Ctrl-C) during step 'readiness'" in out), out
    assert "state of each host after the interrupt:" in out and "last completed step" in out, out
    assert "Traceback" not in out and "internal error" not in out, out
    assert lab.exec("node-1", f"test -e {LOCK}")[0] != 0
    rc, out, _ = U.up(lab.inv, lab.pb)
    assert rc == 0, out
    U.serving_ok(out, "http://172.28.115.11:30000")
