"""The file and directory tasks against canned facts (no host), plus a real-sh check of the
commands they emit."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from glm5cluster.commands import Shell, Upload
from glm5cluster.facts.paths import PathState, PathStateFact
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp
from glm5cluster.tasks.files import DirectoryParams, DirectoryTask, FileParams, FileTask
from glm5cluster.tasks.registry import check_params

CTX = HostContext(node=None)
HOSTILE = "/srv/a b'c;$(reboot)`x`/f\"g"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def file_state(path: str, content: bytes | None, mode: int = 0o600, owner: str = "root",
               group: str = "root", old: bytes | None = None) -> PathState:
    if content is None:
        return PathState(path, exists=False)
    return PathState(path, True, "regular file", mode, owner, group, len(content), sha(content), old)


def plan_file(params: FileParams, state: PathState) -> object:
    task = FileTask()
    facts = task.facts(params, CTX)
    assert set(facts) == {"dest"} and isinstance(facts["dest"], PathStateFact)
    return task.plan(params, CTX, {"dest": state})


def test_converged_file_is_a_noop() -> None:
    p = FileParams(dest="/etc/glm5/env", content="A=1\n", mode="0600", owner="root", group="root")
    out = plan_file(p, file_state(p.dest, b"A=1\n"))
    assert isinstance(out, NoOp) and "up to date" in out.reason


def test_new_file_is_one_upload_with_mode_and_owner() -> None:
    p = FileParams(dest="/etc/glm5/env", content="A=1\n", mode="0600", owner="svc", group="svc")
    out = plan_file(p, file_state(p.dest, None))
    assert isinstance(out, Change) and out.summary.startswith("create")
    (up,) = out.commands
    assert isinstance(up, Upload)
    assert (up.dest, up.content, up.mode, up.owner, up.group) == (p.dest, b"A=1\n", 0o600, "svc", "svc")
    assert out.diff is not None and "+A=1" in out.diff and "/dev/null" in out.diff


def test_changed_file_shows_a_unified_diff() -> None:
    p = FileParams(dest="/etc/x.conf", content="a\nB\nc\n", mode="0644")
    out = plan_file(p, file_state(p.dest, b"a\nb\nc\n", mode=0o644, old=b"a\nb\nc\n"))
    assert isinstance(out, Change)
    assert out.diff is not None and "-b\n+B" in out.diff and "--- /etc/x.conf (now)" in out.diff


def test_secret_content_never_in_diff_or_display() -> None:
    secret = "HF_TOKEN=hf_supersecretvalue\n"
    p = FileParams(dest="/etc/glm5/secrets.env", content=secret, mode="0600", secret=True)
    facts = FileTask().facts(p, CTX)
    assert "supersecret" not in facts["dest"].command().command_line()
    assert facts["dest"].expect_sha256 is None  # never asks the host to send content back
    out = plan_file(p, file_state(p.dest, b"HF_TOKEN=old\n"))
    assert isinstance(out, Change) and out.diff == "(secret content changed)"
    shown = out.summary + out.diff + "".join(c.display() for c in out.commands) + repr(out.commands[0].display())
    assert "supersecret" not in shown and "old" not in out.diff


def test_mode_only_change_does_not_upload() -> None:
    p = FileParams(dest="/etc/x", content="same\n", mode="0600", owner="root")
    out = plan_file(p, file_state(p.dest, b"same\n", mode=0o644))
    assert isinstance(out, Change) and all(isinstance(c, Shell) for c in out.commands)
    assert "mode 0644 -> 0600" in out.summary
    assert out.commands[0].command_line() == "chmod 0600 -- /etc/x"


def test_dest_that_is_a_directory_fails() -> None:
    p = FileParams(dest="/etc/x", content="")
    out = plan_file(p, PathState("/etc/x", True, "directory", 0o755, "root", "root"))
    assert isinstance(out, Fail) and "directory" in out.message


def test_hostile_dest_is_quoted() -> None:
    p = FileParams(dest=HOSTILE, content="x", mode="0644", owner="root")
    out = plan_file(p, file_state(HOSTILE, b"x", mode=0o600))
    assert isinstance(out, Change)
    line = out.commands[0].command_line()
    assert shlex.split(line)[-1] == HOSTILE
    assert PathStateFact(HOSTILE).command().command_line().startswith(f"p={shlex.quote(HOSTILE)}\n")


@pytest.mark.parametrize("bad", [
    {"dest": "relative", "content": ""},
    {"dest": "/etc/x/", "content": ""},
    {"dest": "/etc/x", "content": "", "mode": 384},
    {"dest": "/etc/x", "content": "", "mode": "0999"},
    {"dest": "/etc/x", "content": "", "owner": "root; rm -rf /"},
    {"dest": "/etc/x", "content": "", "unknown": 1},
    {"dest": "/etc/x\nboo", "content": ""},
])
def test_bad_file_params_are_refused_at_load(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        check_params("file", bad)


def test_directory_converged_create_fix_and_remove() -> None:
    task = DirectoryTask()
    p = DirectoryParams(path="/models/glm 5", mode="0750", owner="svc", group="svc")
    ok = PathState(p.path, True, "directory", 0o750, "svc", "svc")
    assert isinstance(task.plan(p, CTX, {"path": ok}), NoOp)
    create = task.plan(p, CTX, {"path": PathState(p.path, False)})
    assert isinstance(create, Change)
    assert create.commands[0].command_line() == (
        "mkdir -p -- '/models/glm 5' && chmod 0750 -- '/models/glm 5' && chown svc:svc -- '/models/glm 5'")
    fix = task.plan(p, CTX, {"path": PathState(p.path, True, "directory", 0o755, "root", "svc")})
    assert isinstance(fix, Change) and "mode 0755 -> 0750" in fix.summary and "owner root -> svc" in fix.summary
    gone = DirectoryParams(path="/models/old", state="absent")
    assert isinstance(task.plan(gone, CTX, {"path": PathState(gone.path, False)}), NoOp)
    rm = task.plan(gone, CTX, {"path": PathState(gone.path, True, "directory", 0o755, "root", "root")})
    assert isinstance(rm, Change) and rm.commands[0].command_line() == "rm -rf -- /models/old"
    assert isinstance(task.plan(p, CTX, {"path": PathState(p.path, True, "regular file", 0o644)}), Fail)


def test_directory_refuses_system_paths() -> None:
    for path in ("/", "/etc", "/usr/", "/var"):
        with pytest.raises(ValidationError):
            check_params("directory", {"path": path, "state": "absent"})


def test_directory_commands_run_in_a_real_shell(tmp_path: Path) -> None:
    target = tmp_path / "a b'c;$(touch PWNED)" / "sub"
    p = DirectoryParams(path=str(target), mode="0711")
    out = DirectoryTask().plan(p, CTX, {"path": PathState(p.path, False)})
    assert isinstance(out, Change)
    cmd = out.commands[0]
    assert isinstance(cmd, Shell)
    subprocess.run(["sh", "-c", cmd.command_line()], check=True, cwd=tmp_path)
    assert target.is_dir() and (target.stat().st_mode & 0o777) == 0o711
    assert not (tmp_path / "PWNED").exists()
    fact = PathStateFact(str(target))
    res = subprocess.run(["sh", "-c", fact.command().command_line()], capture_output=True, text=True, check=True)
    from glm5cluster.commands import CommandResult
    state = fact.parse(CommandResult("x", 0, res.stdout, res.stderr))
    again = DirectoryTask().plan(DirectoryParams(path=str(target), mode="0711", owner=state.owner,
                                                 group=state.group), CTX, {"path": state})
    assert isinstance(again, NoOp)
