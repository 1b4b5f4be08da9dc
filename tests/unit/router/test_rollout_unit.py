"""Rollout pieces without hosts: what a group differs in, the refusals, node 0's drain wait
(against a stand-in of SGLang 0.5.23's /v1/loads and /metrics), the failure line, and the
record of the inventory last applied."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.engine.procedures.rollout import (
    DRAIN_PY,
    GroupPlan,
    first_failure,
    load_applied,
    observe,
    save_applied,
    wanted_ranks,
)
from glm5cluster.engine.procedures.rollout_run import RolloutOptions, refuse
from glm5cluster.engine.report import RunReport, Status, StepReport, StepResult
from glm5cluster.errors import GlmError, InputError
from glm5cluster.model.loader import load_inventory
from tests.unit.conftest import make_inventory, plan


def two_groups(**serving: Any) -> Any:
    return make_inventory(hosts=3, replicas={"count": 2, "router": {"host": "n2"}}, serving=serving)


class Hosts:
    """What each host answers: rank units started with the digests ``launched`` says."""

    def __init__(self, inv: Any, launched: Any, version: str = "0.5.23", extra: str = "") -> None:
        self.inv, self.launched, self.version, self.extra = inv, launched, version, extra

    def __call__(self, host: str, cmd: Shell) -> CommandResult:
        d = cmd.description
        if d.startswith("state of "):  # systemctl show + clock + launch stamp (runtime/unit.py state_script)
            digest = self.launched.get(host, "")
            out = ("LoadState=loaded\nActiveState=active\nSubState=running\nInvocationID=abc\nMainPID=42\n"
                   f"ExecMainStatus=0\n@@glm5cluster:clock@@\n100.0 90.0\n1700000000.0\n"
                   f"@@glm5cluster:stamp@@\n{digest} abc\n")
            return CommandResult("state", 0, out)
        if d.startswith("services of cluster "):
            unit = self.extra or f"glm5-t-r{self._replica(host)}.service"
            return CommandResult("fp", 0, f"unit\t{unit}\tactive\tGLM-5 replica x rank 0/1\n"
                                          "unit\tglm5-t-router.service\tactive\tglm5cluster router\n")
        if d == "installed SGLang":
            return CommandResult("v", 0, self.version + "\n")
        raise AssertionError(d)

    def _replica(self, host: str) -> int:
        return {"n0": 0, "n1": 1}[host]


def launched_as(inv: Any) -> dict[str, str]:
    topo = plan(inv)
    return {w.host: w.digest for rep in topo.replicas for w in wanted_ranks(inv, topo, rep)}


def test_unchanged_group_keeps_and_changes_are_named() -> None:
    inv = two_groups()
    topo = plan(inv)
    hosts = Hosts(inv, launched_as(inv))
    p = observe(hosts, inv, topo, topo.replicas[0], True)
    assert not p.rolls and p.why() == "unchanged, serving"
    # new flags: the launch digest differs
    changed = two_groups(extra_args=["--max-running-requests", "64"])
    p = observe(hosts, changed, plan(changed), plan(changed).replicas[0], True)
    assert p.rolls and p.reasons == ("rank 0 on n0: launch config changed (flags, environment or image)",)
    # a new SGLang version (venv): the unit is the same, the installed package is not
    newer = two_groups(sglang_version="0.5.22")
    p = observe(Hosts(newer, launched_as(newer)), newer, plan(newer), plan(newer).replicas[1], True)
    assert p.reasons == ("SGLang 0.5.23 installed on n1, 0.5.22 wanted",)
    # out of the router (a rollout stopped half-way) rolls even when unchanged
    assert observe(hosts, inv, topo, topo.replicas[0], False).why() == "out of the router"


def test_a_host_running_another_replica_is_a_reshape() -> None:
    inv = two_groups()
    topo = plan(inv)
    p = observe(Hosts(inv, launched_as(inv), extra="glm5-t-r1.service"), inv, topo, topo.replicas[0], True)
    assert "n0 runs replica 1 rank 0, the inventory now makes it replica 0 rank 0" in p.reshaped


def gp(i: int, reasons: tuple[str, ...] = ("x",), registered: bool | None = True, reshaped: str = "") -> GroupPlan:
    return GroupPlan(i, (f"n{i}",), f"http://n{i}:30000", reasons, reshaped, registered)


def test_refusals() -> None:
    one = plan(make_inventory(hosts=1))
    with pytest.raises(InputError, match="single replica") as e:
        refuse([gp(0)], one, RolloutOptions(), "inv.yaml")
    assert "--allow-downtime" in (e.value.hint or "")
    refuse([gp(0)], one, RolloutOptions(allow_downtime=True), "inv.yaml")
    refuse([gp(0, reasons=())], one, RolloutOptions(), "inv.yaml")  # nothing to roll: fine
    two = plan(two_groups())
    with pytest.raises(InputError, match="all 2 replicas out of the router"):
        refuse([gp(0), gp(1)], two, RolloutOptions(max_unavailable=2), "inv.yaml")
    refuse([gp(0), gp(1)], two, RolloutOptions(max_unavailable=1), "inv.yaml")
    with pytest.raises(InputError, match="changed shape") as e:
        refuse([gp(0, reshaped="n0 runs replica 1 rank 0")], two, RolloutOptions(), "inv.yaml")
    assert "glm5cluster down inv.yaml" in (e.value.hint or "")


class Node0(BaseHTTPRequestHandler):
    """0.5.23 /v1/loads (entrypoints/v1_loads.py:96: {"loads": [{"num_running_reqs", ...}]})
    answering a falling count; ``loads=False``: 404 there and the /metrics gauge instead."""

    counts: list[int] = []
    loads = True

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        n = self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]
        if self.path.startswith("/v1/loads") and self.loads:
            body = json.dumps({"version": "0.5.23", "loads": [{"dp_rank": 0, "num_running_reqs": n,
                                                               "num_waiting_reqs": 0}]})
        elif self.path == "/metrics" and not self.loads:
            body = f'sglang:num_running_reqs{{model_name="m"}} {float(n)}\nsglang:num_queue_reqs{{model_name="m"}} 0.0\n'
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def node0() -> Iterator[tuple[int, type[Node0]]]:
    handler = type("H", (Node0,), {"counts": [], "loads": True})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield int(srv.server_address[1]), handler
    srv.shutdown()
    srv.server_close()


def drain(port: int, limit: float) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-c", DRAIN_PY, str(port), str(limit)], input="\n",
                       capture_output=True, text=True, timeout=60)
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def test_drain_waits_for_no_running_request(node0: tuple[int, type[Node0]]) -> None:
    port, h = node0
    h.counts = [3, 2, 1, 0]
    doc = drain(port, 20)
    assert doc["drained"] and doc["source"] == "/v1/loads" and doc["waited"] >= 1.5


def test_drain_falls_back_to_the_metric_and_gives_up_at_the_timeout(node0: tuple[int, type[Node0]]) -> None:
    port, h = node0
    h.loads, h.counts = False, [2]
    doc = drain(port, 2)
    assert not doc["drained"] and doc["source"] == "sglang:num_running_reqs" and doc["running"] == 2


def test_first_failure_names_step_host_and_fix() -> None:
    rep = RunReport("rollout", ["n0"], steps=[StepReport(0, "launch", "launch", {"n0": StepResult(Status.OK)}),
                                               StepReport(1, "readiness", "readiness", {"n0": StepResult(
                                                   Status.FAILED, message="rank 0 exited: OOM", hint="lower mem")})])
    assert first_failure(rep) == "step 'readiness' on n0: rank 0 exited: OOM (fix: lower mem)"


def test_applied_record_keeps_the_previous_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path / "home"))
    src = Path(__file__).resolve().parents[3] / "inventory" / "two-replicas-router.yaml"
    a = tmp_path / "a.yaml"
    a.write_text(src.read_text())
    save_applied(load_inventory(a))
    a.write_text(src.read_text().replace('sglang_version: "0.5.23"', 'sglang_version: "0.5.22"'))
    save_applied(load_inventory(a))
    assert load_applied("h200-2x").inventory.serving.sglang_version == "0.5.22"
    prev = load_applied("h200-2x", "previous")
    assert prev.inventory.serving.sglang_version == "0.5.23" and prev.base_dir == str(tmp_path)


def _rollout(monkeypatch: pytest.MonkeyPatch, plans: list[GroupPlan], roll: Any, tmp_path: Path,
             **opts: Any) -> tuple[int | None, list[str], BaseException | None]:
    from glm5cluster.engine.procedures import rollout_run

    monkeypatch.setenv("GLM5CLUSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(rollout_run, "plan_groups", lambda *a: plans)
    monkeypatch.setattr(rollout_run, "roll_group", roll)
    src = Path(__file__).resolve().parents[3] / "inventory" / "two-replicas-router.yaml"
    loaded = load_inventory(src)
    lines: list[str] = []
    try:
        code = rollout_run.run_rollout(loaded, plan(loaded.inventory), None, None, RolloutOptions(**opts),  # type: ignore[arg-type]
                                       lambda e: None, None, lines.append, "inv.yaml")
        return code, lines, None
    except BaseException as e:  # noqa: BLE001
        return None, lines, e


def test_out_of_router_groups_roll_first_and_a_failure_stops_the_rollout(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    order: list[int] = []

    def roll(rep: Any, loaded: Any, topo: Any, pool: Any, pb: Any, opts: Any, ev: Any, log: Any, prog: Any, echo: Any) -> str:
        order.append(rep.index)
        if rep.index == 0:
            prog.set(0, "out of the router, FAILED")
            raise GlmError("replica 0 (n0) failed: step 'readiness' on n0: OOM", hint="--rollback")
        prog.set(rep.index, "serving, in the router")
        return f"replica {rep.index}: rolled"

    code, lines, _ = _rollout(monkeypatch, [gp(0), gp(1, registered=False)], roll, tmp_path)
    assert code == 1 and order == [1, 0]  # the group already out goes first; after a failure, nothing else
    assert "FAILED: replica 0 (n0) failed: step 'readiness' on n0: OOM" in lines and "hint: --rollback" in lines
    assert "  replica 1: serving, in the router" in lines and "  replica 0: out of the router, FAILED" in lines


def test_ctrl_c_names_where_every_group_is_and_reraises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def roll(rep: Any, loaded: Any, topo: Any, pool: Any, pb: Any, opts: Any, ev: Any, log: Any, prog: Any, echo: Any) -> str:
        prog.set(rep.index, "out of the router, stopped (being changed)")
        raise KeyboardInterrupt

    _, lines, err = _rollout(monkeypatch, [gp(0), gp(1)], roll, tmp_path)
    assert isinstance(err, KeyboardInterrupt)
    assert lines[-3].startswith("interrupted: each replica group is left as follows")
    assert lines[-2:] == ["  replica 0: out of the router, stopped (being changed)", "  replica 1: serving, in the router"]


def test_nothing_to_roll_records_the_inventory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, lines, _ = _rollout(monkeypatch, [gp(0, reasons=()), gp(1, reasons=())], None, tmp_path)
    assert code == 0 and "nothing to roll: every replica runs what the inventory says and is in the router" in lines
    assert load_applied("h200-2x").inventory.cluster.name == "h200-2x"
    code, lines, _ = _rollout(monkeypatch, [gp(0), gp(1, reasons=())], None, tmp_path, check=True)
    assert code == 0 and "check: 1 replica group(s) would roll, 1 at a time" in lines
