"""`glm5cluster run` / `exec` end to end over real SSH to a local sshd (no lab needed)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from glm5cluster.cli.main import main
from glm5cluster.engine import runlock
from tests.engine.conftest import LocalSshd

CLUSTER = f"local-{uuid.uuid4().hex[:8]}"  # the run lock lives on this machine: one per test run


@pytest.fixture
def setup(sshd: LocalSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path / "g5"))
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"""
cluster: {{name: {CLUSTER}, gpu: {{kind: H200, count: 8}}}}
ssh:
  identity_file: {sshd.client_key}
  known_hosts: {sshd.known_hosts}
  port: {sshd.port}
  connect_timeout: 5
hosts:
  - {{name: node-1, address: 127.0.0.1}}
  - {{name: node-2, address: 127.0.0.2}}
groups:
  second: [node-2]
model: {{repo: zai-org/GLM-5, weights_dir: /srv/models/GLM-5}}
""")
    work = tmp_path / "work"
    pb = tmp_path / "pb.yaml"
    pb.write_text(f"""
name: local
steps:
  - name: dir
    task: directory
    params: {{path: {work}, mode: "0750"}}
  - name: env
    task: file
    params: {{dest: {work}/env, content: "A=1\\n", mode: "0600"}}
""")
    return inv, pb, work


def test_run_converges_then_noop_check_and_refusal(setup: tuple[Path, Path, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    inv, pb, work = setup
    assert main(["run", str(inv), str(pb), "--check"]) == 0
    out = capsys.readouterr().out
    assert "CHECK RECAP" in out and "would change" in out and not work.exists()

    assert main(["run", str(inv), str(pb)]) == 2  # changes, no terminal, no --yes
    captured = capsys.readouterr()
    assert "--yes" in captured.err and not work.exists()

    assert main(["run", str(inv), str(pb), "--yes"]) == 0
    out = capsys.readouterr().out
    assert stat.S_IMODE(os.stat(work / "env").st_mode) == 0o600 and (work / "env").read_text() == "A=1\n"
    assert "logs: " in out

    assert main(["run", str(inv), str(pb)]) == 0  # converged: no confirmation needed
    out = capsys.readouterr().out
    assert out.count("changed=0") == 2

    (work / "env").write_text("A=2\n")
    assert main(["run", str(inv), str(pb), "--check", "--limit", "second"]) == 0
    out = capsys.readouterr().out
    assert "[env] node-2: update" in out and "node-1" not in out.split("CHECK RECAP")[1]
    assert (work / "env").read_text() == "A=2\n"


def test_exec(setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inv, _, _ = setup
    assert main(["exec", str(inv), "--", "echo", "hi there"]) == 0
    out = capsys.readouterr().out
    assert "node-1 | hi there" in out and "node-2 | exit 0" in out
    assert main(["exec", str(inv), "--limit", "node-1", "--", "echo bad >&2; exit 4"]) == 1
    out = capsys.readouterr().out
    assert "node-1 (stderr) | bad" in out and "node-1 | exit 4" in out and "node-2" not in out


def test_bad_playbook_is_exit_2(setup: tuple[Path, Path, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    inv, _, _ = setup
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - task: directory\n    params: {pth: /x}\n")
    assert main(["run", str(inv), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: steps[0].params.pth: unknown parameter 'pth'" in err


def test_run_logs_mask_the_inventory_secrets_like_up(setup: tuple[Path, Path, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    inv, pb, work = setup
    inv.write_text(inv.read_text() + "serving: {secrets: {api_key_env: G5_TEST_KEY}}\n")
    pb.write_text(pb.read_text().replace('A=1', 'KEY=sk-local-0123456789'))
    monkeypatch.setenv("G5_TEST_KEY", "sk-local-0123456789")
    assert main(["run", str(inv), str(pb), "--yes"]) == 0
    out = capsys.readouterr().out
    logs = list((tmp_path / "g5" / "runs").rglob("*.log"))
    text = "".join(p.read_text() for p in logs)
    assert logs and "sk-local-0123456789" not in text and "KEY=***" in text, text
    assert "sk-local-0123456789" not in out


def test_run_is_refused_while_another_run_holds_the_cluster_lock(setup: tuple[Path, Path, Path],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    inv, pb, work = setup
    lock = Path(runlock.lock_file(CLUSTER))
    lock.parent.mkdir(parents=True, exist_ok=True)
    other = runlock.Holder("alice@ctl-7", "glm5cluster up prod.yaml", 4242, "2026-11-30T10:00:00Z", "t0k3n")
    lock.write_text(json.dumps(dataclasses.asdict(other)))
    try:
        assert main(["run", str(inv), str(pb), "--yes"]) == 1
        err = capsys.readouterr().err
        assert "locked by another run: alice@ctl-7 (pid 4242) since 2026-11-30T10:00:00Z: glm5cluster up prod.yaml" in err
        assert "--break-lock" in err and not work.exists()  # nothing was changed
        assert main(["run", str(inv), str(pb), "--check"]) == 0  # read-only: no lock needed
        assert main(["run", str(inv), str(pb), "--yes", "--break-lock"]) == 0
        assert work.exists() and not lock.exists()  # broken, taken, and released at the end
    finally:
        lock.unlink(missing_ok=True)


def test_ctrl_c_to_the_real_cli_ends_the_run_names_each_host_and_releases_the_lock(
        setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    inv, pb, work = setup
    slow = tmp_path / "slow.yaml"
    slow.write_text(pb.read_text() + "  - {name: wait, task: command, params: {cmd: 'sleep 30', changes: true}}\n"
                    "  - {name: never, task: command, params: {cmd: 'touch /tmp/glm5-never', changes: true}}\n")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "GLM5CLUSTER_HOME": str(tmp_path / "g5")}
    # a test run started in the background (`cmd &` in a non-interactive shell) inherits SIGINT
    # ignored, and Python keeps an inherited SIG_IGN: the CLI gets SIGINT as from a terminal
    proc = subprocess.Popen([sys.executable, "-m", "glm5cluster", "run", str(inv), str(slow), "--yes"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[2],
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    lock = Path(runlock.lock_file(CLUSTER))
    try:
        deadline = time.monotonic() + 30
        while not (work / "env").exists() and time.monotonic() < deadline:  # the `wait` step has begun
            time.sleep(0.1)
        time.sleep(1)
        assert lock.exists()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        released = not lock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        lock.unlink(missing_ok=True)
    assert proc.returncode == 130, out
    assert time.monotonic() - t0 < 10, out  # not after the 30 s command
    assert "interrupted (Ctrl-C) during step 'wait'" in out, out
    assert "node-1  INTERRUPTED" in out and "node-2  INTERRUPTED" in out, out
    assert "in step 'wait' when interrupted (may be partly done); last completed step 'env'" in out, out
    assert "Traceback" not in out and "internal error" not in out, out
    assert not Path("/tmp/glm5-never").exists()
    assert released  # the run lock is released on the way out
