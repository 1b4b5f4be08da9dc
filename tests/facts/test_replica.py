"""facts.replica and facts.rank_state: rank states from systemd/docker, node 0's HTTP answers,
and the verdict.

Data: ``replica/`` holds real SGLang answers (public sources in ``replica/SOURCES.md``) and ``systemctl show`` / ``docker inspect`` outputs captured from the lab's
real systemd and docker (``replica/SOURCES.md``); the logs are ``sglang_log/``'s real captures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glm5cluster.facts.rank_state import (
    Clock,
    RankState,
    container_state,
    parse_clock,
    parse_props,
    unit_state,
)
from glm5cluster.facts.replica import (
    HeadProbe,
    HttpReply,
    RankView,
    Verdict,
    judge,
    model_ids,
    parse_http,
    server_version,
)

HERE = Path(__file__).parent
DATA = HERE / "replica"
LOGS = HERE / "sglang_log"
UP = RankState("active", "running", 1000.0)


def read(name: str) -> str:
    return (DATA / name).read_text()


def log(name: str) -> tuple[str, ...]:
    return tuple((LOGS / name).read_text().splitlines())


def test_models_and_version_from_real_answers() -> None:
    assert model_ids(read("v1_models_deepseek-r1_node0.json")) == ("/app/models/Deepseek-R1/",)
    assert server_version(read("get_server_info_deepseek-r1_tp16-2node-prefill.json")) == "0.5.9"
    assert server_version(read("server_info_qwen2.5-0.5b-instruct_h200-ci.json")) == "0.0.0.dev1+g5dd2c243e"
    assert model_ids("not json") == () and server_version("{}") is None


def test_parse_http_body_and_code() -> None:
    body = read("v1_models_deepseek-r1_node0.json")
    r = parse_http(body + "\n200")
    assert r.status == 200 and r.body == body
    assert parse_http("\n000").status is None  # curl: no connection
    assert parse_http("\n503") == HttpReply(503, "")
    assert parse_http("curl: (7) Failed to connect").status is None


def test_systemd_states_captured_from_the_lab() -> None:
    clock = parse_clock(read("clock.txt"))
    assert clock is not None
    up = unit_state(parse_props(read("systemctl-show_active.txt")), clock)
    assert up.state == "active" and up.up and up.since is not None and up.since < clock.wall
    killed = unit_state(parse_props(read("systemctl-show_failed-sigkill.txt")), clock)
    assert killed.state == "failed" and killed.signal == 9 and killed.exit_code is None
    assert killed.how_it_ended() == "killed by signal 9 (SIGKILL)"
    crashed = unit_state(parse_props(read("systemctl-show_failed-exit1.txt")), clock)
    assert crashed.state == "failed" and crashed.exit_code == 1
    gone = unit_state(parse_props(read("systemctl-show_not-found.txt")), clock)
    assert gone.state == "absent"


def test_docker_states_captured_from_the_lab() -> None:
    running = container_state(read("docker-inspect-state_running.json"))
    assert running.state == "active" and running.since is not None
    killed = container_state(read("docker-inspect-state_killed.json"))
    assert killed.state == "failed" and killed.signal == 9 and killed.exit_code is None
    assert killed.exited_at is not None and killed.started_at is not None
    assert 17 < killed.exited_at - killed.started_at < 18  # 21:54:33.86 -> 21:54:51.41
    assert container_state("", found=False).state == "absent"


def test_clock_maps_monotonic_to_wall_time() -> None:
    c = Clock(wall=2000.0, uptime=500.0)
    assert c.wall_of_monotonic(400_000_000) == 1900.0
    assert c.wall_of_monotonic(0) is None
    assert parse_clock("garbage") is None


def _head(health: int | None = 200, ids: str = '{"data":[{"id":"zai-org/GLM-5"}]}') -> HeadProbe:
    return HeadProbe(HttpReply(health), HttpReply(200, ids), HttpReply(200, '{"version":"0.5.23"}'))


def test_serving_needs_node0_health_the_model_and_every_rank_up() -> None:
    ranks = [RankView(0, "node-1", UP), RankView(1, "node-2", UP)]
    assert judge(ranks, _head(), "zai-org/GLM-5").verdict is Verdict.SERVING
    assert judge(ranks, _head(ids='{"data":[]}'), "zai-org/GLM-5").verdict is Verdict.STARTING
    starting = judge(ranks, _head(health=503), "zai-org/GLM-5")
    assert starting.verdict is Verdict.STARTING and "rank 1: starting" in starting.reason


def test_a_dead_worker_breaks_a_replica_whose_head_still_answers() -> None:
    # node 0 answers 200 (NCCL has not noticed yet); the worker's unit is gone: broken, named.
    dead = RankState("failed", "failed", 990.0, signal=9)
    j = judge([RankView(0, "node-1", UP), RankView(1, "node-2", dead)], _head(), "zai-org/GLM-5")
    assert j.verdict is Verdict.BROKEN and j.rank == 1 and j.host == "node-2"
    assert "killed by signal 9" in j.reason


def test_killed_worker_is_named_before_the_head_that_saw_it_go() -> None:
    head_log = (  # the last lines node 0 logs when NCCL loses a peer (the simulator's wording)
        "node-1:812:812 [0] transport/net_socket.cc:540 NCCL WARN Net : Connection closed by remote peer",
        "RuntimeError: NCCL error: remote process exited or there was a network error",
        "Received sigquit from a child process. It usually means the child failed.")
    head = RankView(0, "node-1", RankState("failed", "failed", 1001.0, exit_code=1), head_log)
    worker = RankView(1, "node-2", RankState("failed", "failed", 1002.0, signal=9), ())
    j = judge([head, worker], None)
    assert j.verdict is Verdict.BROKEN and (j.rank, j.host) == (1, "node-2")


def test_primary_cause_in_a_log_wins_and_is_reported() -> None:
    oom = log("mi355x-x8_glm5-fp8_hip-oom-during-weight-load.log")
    head = RankView(0, "node-1", RankState("failed", "failed", 1000.0, exit_code=1), ())
    worker = RankView(1, "node-2", RankState("failed", "failed", 1005.0, exit_code=1), oom)
    j = judge([head, worker], None)
    assert (j.verdict, j.rank) == (Verdict.BROKEN, 1)
    assert j.cause is not None and "out of GPU memory" in j.cause and j.fix and j.evidence


@pytest.mark.parametrize(("states", "verdict"), [
    (("absent", "absent"), Verdict.STOPPED),
    (("inactive", "inactive"), Verdict.STOPPED),
    (("inactive", "failed"), Verdict.BROKEN),
    (("active", "unreachable"), Verdict.UNKNOWN),
])
def test_verdict_table(states: tuple[str, str], verdict: Verdict) -> None:
    ranks = [RankView(i, f"node-{i + 1}", RankState(s)) for i, s in enumerate(states)]
    assert judge(ranks, None).verdict is verdict


def test_an_unreachable_host_is_named_before_the_rank_that_exited_after_it() -> None:
    # node-2 went down; node 0 crashed when NCCL lost it: the cause to name first is node-2
    head_log = ("Traceback (most recent call last):", "RuntimeError: NCCL communicator was aborted")
    head = RankView(0, "node-1", RankState("failed", "failed", 1001.0, exit_code=1), head_log)
    gone = RankView(1, "node-2", RankState("unreachable", "node-2: cannot connect: timed out"))
    j = judge([head, gone], None)
    assert j.verdict is Verdict.BROKEN and (j.rank, j.host) == (1, "node-2")
    assert j.reason.startswith("cannot reach node-2; rank 0 on node-1 exited"), j.reason
    assert j.fix is not None and "--node ..." not in j.fix and "--node node-1" in j.fix, j.fix
