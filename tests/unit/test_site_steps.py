"""python: site steps (engine/userstep.py, connect/fabric_conn.py): loading with file:line
problems, running inside the engine (check, recap, fail policy), and the fabric Connection's
host-key policy, sudo and transport, which are the engine's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import paramiko
import pytest
from invoke.exceptions import UnexpectedExit
from invoke.runners import Result

from glm5cluster.connect.fake import FakeConnection
from glm5cluster.connect.pool import ConnectionPool, ConnectOptions
from glm5cluster.engine import userstep
from glm5cluster.engine.playbook import load_playbook, splice_site
from glm5cluster.engine.report import Status
from glm5cluster.engine.runner import RunOptions, run_playbook
from glm5cluster.errors import HostKeyError, InputProblems
from glm5cluster.model.loader import load_inventory

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
INV = """\
version: 1
cluster: {name: lab, gpu: {kind: H200, count: 8}}
hosts:
- {name: node-1, address: 10.0.0.11}
- {name: node-2, address: 10.0.0.12}
model: {repo: zai-org/GLM-5, weights_dir: /srv/models/GLM-5}
"""


class FakeFabric:
    """The edge: a fabric Connection's run/sudo over a dict of files (invoke's own Result and
    UnexpectedExit, as fabric raises them)."""

    def __init__(self, files: dict[str, str], host: str) -> None:
        self.files, self.host, self.ran, self.closed = files, host, [], False

    def run(self, command: str, warn: bool = False) -> Result:
        self.ran.append(command)
        words = command.split()
        if words[0] == "cat" and words[1] in self.files:
            res = Result(stdout=self.files[words[1]], command=command, exited=0)
        elif words[0] == "write":
            self.files[words[1]] = words[2]
            res = Result(command=command, exited=0)
        else:
            res = Result(stderr=f"{words[0]}: failed here", command=command, exited=1)
        if res.exited and not warn:
            raise UnexpectedExit(res)
        return res

    sudo = run

    def close(self) -> None:
        self.closed = True


def _playbook(tmp_path: Path, steps: str) -> Path:
    shutil.copy(HERE / "site_fixture_steps.py", tmp_path / "steps.py")
    pb = tmp_path / "site.yaml"
    pb.write_text("name: site\nsteps:\n" + steps)
    return pb


def _run(tmp_path: Path, pb_file: Path, files: dict[str, dict[str, str]], check: bool = False,
         monkeypatch: pytest.MonkeyPatch | None = None, limit: tuple[str, ...] = ()):
    inv = tmp_path / "inv.yaml"
    inv.write_text(INV)
    loaded = load_inventory(inv)
    made: dict[str, FakeFabric] = {}

    def connect(node: Any, options: Any, on_command: Any) -> FakeFabric:
        made[node.name] = FakeFabric(files.setdefault(node.name, {}), node.name)
        return made[node.name]

    assert monkeypatch is not None
    monkeypatch.setattr(userstep, "connect", connect)
    pb = load_playbook(pb_file)
    with ConnectionPool(loaded.nodes, factory=lambda n: FakeConnection(n.name)) as pool:
        report = run_playbook(pb, loaded.inventory, loaded.nodes, pool,
                              RunOptions(check=check, limit=limit))
    return report, made


def test_site_step_changes_then_is_ok_and_check_changes_nothing(tmp_path, monkeypatch) -> None:
    pb = _playbook(tmp_path, "  - name: marker\n    python: steps.py:marker\n"
                             "    params: {path: /etc/m, text: hi}\n")
    files: dict[str, dict[str, str]] = {}
    report, made = _run(tmp_path, pb, files, check=True, monkeypatch=monkeypatch)
    assert report.exit_code == 0
    res = report.steps[0].results
    assert {h: r.status for h, r in res.items()} == {"node-1": Status.CHANGED, "node-2": Status.CHANGED}
    assert res["node-1"].summary == "would write /etc/m"
    assert files == {"node-1": {}, "node-2": {}}  # --check changed nothing
    assert all(c.closed for c in made.values())

    report, _ = _run(tmp_path, pb, files, monkeypatch=monkeypatch, limit=("node-2",))
    assert list(report.steps[0].results) == ["node-2"]  # --limit
    assert report.steps[0].results["node-2"].status is Status.CHANGED
    assert files["node-2"] == {"/etc/m": "hi"} and files["node-1"] == {}

    report, _ = _run(tmp_path, pb, files, monkeypatch=monkeypatch, limit=("node-2",))
    assert report.steps[0].results["node-2"].status is Status.OK


def test_failures_are_results_with_the_command_and_its_output(tmp_path, monkeypatch) -> None:
    pb = _playbook(tmp_path, "  - python: steps.py:boom\n  - python: steps.py:marker\n")
    report, _ = _run(tmp_path, pb, {}, monkeypatch=monkeypatch)
    r = report.steps[0].results["node-1"]
    assert r.status is Status.FAILED
    assert r.message == "false exited 1" and r.exit_code == 1 and "false: failed here" in r.tail
    assert report.exit_code == 1
    assert not report.steps[1].results  # fail policy: the failed hosts run no later step


@pytest.mark.parametrize(("func", "message"), [
    ("refuse", "not on this host"),
    ("raises", "steps.py:raises raised ValueError: bad site data"),
    ("returns_junk", "steps.py:returns_junk returned 42"),
])
def test_a_step_that_fails_refuses_or_misbehaves_fails_its_hosts(tmp_path, monkeypatch, func: str,
                                                                  message: str) -> None:
    pb = _playbook(tmp_path, f"  - python: steps.py:{func}\n")
    report, _ = _run(tmp_path, pb, {}, monkeypatch=monkeypatch)
    r = report.steps[0].results["node-2"]
    assert r.status is Status.FAILED and r.message == message


def test_unreachable_host_keys_refused(tmp_path, monkeypatch) -> None:
    pb = _playbook(tmp_path, "  - python: steps.py:marker\n")

    def connect(node: Any, options: Any, on_command: Any) -> Any:
        raise HostKeyError(f"{node.name}: unknown host key", hint="add it to known_hosts")

    inv = tmp_path / "inv.yaml"
    inv.write_text(INV)
    loaded = load_inventory(inv)
    monkeypatch.setattr(userstep, "connect", connect)
    with ConnectionPool(loaded.nodes, factory=lambda n: FakeConnection(n.name)) as pool:
        report = run_playbook(load_playbook(pb), loaded.inventory, loaded.nodes, pool, RunOptions())
    r = report.steps[0].results["node-1"]
    assert r.status is Status.UNREACHABLE and "unknown host key" in r.message


@pytest.mark.parametrize(("steps", "where", "text"), [
    ("  - python: nothere.py:f\n", "steps[0].python", "no such file"),
    ("  - python: steps.py:missing\n", "steps[0].python", "has no function 'missing'"),
    ("  - python: steps.py\n", "steps[0].python", "bad python step"),
    ("  - python: steps.py:marker\n    params: {colour: red}\n", "steps[0].params",
     "unexpected keyword argument 'colour'"),
    ("  - python: steps.py:marker\n    task: probe\n", "steps[0]", "either task or python"),
    ("  - python: steps.py:marker\n    at: sometime\n", "steps[0].at", "unknown point"),
])
def test_load_problems_name_file_line_and_field(tmp_path, steps: str, where: str, text: str) -> None:
    pb = _playbook(tmp_path, steps)
    with pytest.raises(InputProblems) as e:
        load_playbook(pb)
    probs = [p for p in e.value.problems if p.path == where]
    assert probs and text in probs[0].message, e.value.problems
    assert probs[0].line is not None and probs[0].file == str(pb)


def test_splice_places_site_steps_at_their_points(tmp_path) -> None:
    pb = _playbook(tmp_path, "  - {name: late, python: steps.py:marker, at: after_ready}\n"
                             "  - {name: early, python: steps.py:marker}\n"
                             "  - {name: mid, python: steps.py:marker, at: before_launch}\n")
    up = load_playbook(REPO / "playbooks" / "up.yaml")
    names = [s.name for s in splice_site(up, load_playbook(pb)).steps]
    assert names.index("early") == names.index("NVIDIA driver") - 1
    assert names.index("mid") == names.index("launch") - 1
    assert names.index("late") == names.index("readiness") + 1
    spliced = splice_site(up, load_playbook(pb))
    assert [s.index for s in spliced.steps] == list(range(len(spliced.steps)))


def test_the_example_site_playbook_loads() -> None:
    pb = load_playbook(REPO / "playbooks" / "site-example.yaml")
    assert [s.task_name for s in pb.steps] == ["python:site_steps.py:sysctl", "python:site_steps.py:marker"]


def _engine_conn(tmp_path: Path, needs_sudo: bool):
    from glm5cluster.connect.fabric_conn import EngineConnection
    from glm5cluster.connect.ssh import SshConnection, SshOptions
    from glm5cluster.connect.sshconfig import Endpoint

    kh = tmp_path / "known_hosts"
    host_key = paramiko.RSAKey.generate(1024)
    kh.write_text(f"10.0.0.11 {host_key.get_name()} {host_key.get_base64()}\n")
    ep = Endpoint(label="node-1", host="10.0.0.11", port=22, user="ops" if needs_sudo else "root")
    ssh = SshConnection("node-1", ep, str(kh), SshOptions(user_known_hosts=None), needs_sudo=needs_sudo)
    return EngineConnection(ssh, 30.0), host_key


def test_fabric_connection_refuses_unknown_keys_and_connects_only_through_the_engine(tmp_path) -> None:
    conn, _ = _engine_conn(tmp_path, needs_sudo=False)
    assert isinstance(conn.policy, paramiko.RejectPolicy)  # fabric's AutoAddPolicy replaced
    assert conn.client.get_host_keys().lookup("10.0.0.11") is not None  # inventory known_hosts

    class Transport:
        active = True

    calls = []
    conn.engine._ensure = lambda: calls.append(1) or Transport()  # type: ignore[method-assign]
    conn.client.connect = lambda *a, **k: pytest.fail("fabric must not connect by itself")  # type: ignore[method-assign]
    conn.open()
    conn.open()
    assert calls == [1] and conn.is_connected and conn.client.get_transport() is conn.transport


def test_fabric_sudo_is_the_engines_sudo_n(tmp_path, monkeypatch) -> None:
    from glm5cluster.connect.fabric_conn import EngineConnection

    seen: list[str] = []
    monkeypatch.setattr(EngineConnection, "run", lambda self, cmd, **kw: seen.append(cmd))
    user, _ = _engine_conn(tmp_path, needs_sudo=True)
    user.sudo("mount /x && echo 'a b'")
    root, _ = _engine_conn(tmp_path, needs_sudo=False)
    root.sudo("mount /x")
    assert seen == ["sudo -n -H sh -c 'mount /x && echo '\"'\"'a b'\"'\"''", "mount /x"]


def test_local_transport_is_refused_with_a_hint(tmp_path) -> None:
    from glm5cluster.connect.fabric_conn import fabric_connection
    from glm5cluster.errors import TransportError

    inv = tmp_path / "inv.yaml"
    inv.write_text(INV)
    node = load_inventory(inv).nodes[0]
    with pytest.raises(TransportError):
        fabric_connection(node, ConnectOptions(transport="local"))


def test_fabric_is_not_imported_for_playbooks_without_python_steps() -> None:
    code = ("import sys; from glm5cluster.engine.playbook import load_playbook; "
            f"load_playbook({str(REPO / 'playbooks' / 'up.yaml')!r}); "
            "import glm5cluster.engine.runner, glm5cluster.engine.userstep; "
            "print('fabric' in sys.modules, 'invoke.context' in sys.modules)")  # invoke itself: a stand-in (connect/__init__.py)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
