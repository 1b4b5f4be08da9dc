from __future__ import annotations

from pathlib import Path

import pytest

from glm5cluster.facts.sglang_log import Phase, RankLog, diagnose, phase_of, read_log

HERE = Path(__file__).parent / "sglang_log"


def lines(name: str) -> list[str]:
    return (HERE / name).read_text(errors="replace").splitlines()


@pytest.mark.parametrize(
    "name, cause",
    [
        ("gloo-connectfullmesh-failed_scheduler-traceback_partial.log", "wrong_interface"),
        ("h100x8-2node_deepseek-r1-tp16-decode_node1_nccl-bootstrap-connection-refused.log",
         "dist_init_unreachable"),
        ("mi355x-x8_glm5-fp8_hip-oom-during-weight-load.log", "oom"),
        ("mi355x-x8_glm5-fp8_keyerror-glm_moe_dsa.log", "old_transformers"),
    ],
)
def test_real_failures_are_named(name: str, cause: str) -> None:
    reading = read_log(lines(name))
    assert reading.failure is not None
    assert reading.failure.cause.key == cause


def test_echo_of_a_dead_peer_is_not_primary() -> None:
    reading = read_log(lines("h100x8-2node_deepseek-r1-tp16_node0_nccl-remote-process-exited.log"))
    keys = [f.cause.key for f in reading.findings]
    assert "peer_died" in keys


def test_healthy_startup_reaches_ready_and_has_no_failure() -> None:
    part1 = lines("h100x8-2node_deepseek-r1-tp16-decode_node0_part1_args-distinit-nccl.log")
    part2 = lines("h100x8-2node_deepseek-r1-tp16-decode_node0_part2_load-kv-cudagraph-ready.log")
    assert phase_of(part1) in (Phase.RENDEZVOUS, Phase.LOADING)
    reading = read_log(part1 + part2)
    assert reading.phase == Phase.READY
    assert reading.failure is None


def test_phases_in_order() -> None:
    assert phase_of(["[x TP0] Init torch distributed begin."]) == Phase.RENDEZVOUS
    assert phase_of(["Load weight begin. avail mem=1"]) == Phase.LOADING
    assert phase_of(["Load weight end. type=X"]) == Phase.KV_CACHE
    assert phase_of(["Capture cuda graph begin. This"]) == Phase.GRAPH_CAPTURE
    assert phase_of([]) == Phase.STARTING


def test_diagnose_names_the_primary_rank_not_the_echo() -> None:
    echo = RankLog(0, "node-1", ("RuntimeError: NCCL error: remote process exited or there was a network error",),
                   exited=True, exit_code=1, exited_at=10.0)
    oom = RankLog(1, "node-2", ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB",),
                  exited=True, exit_code=1, exited_at=11.0)
    d = diagnose([echo, oom])
    assert d is not None and d.rank == 1 and d.host == "node-2" and d.cause.key == "oom"


def test_diagnose_first_exit_wins_among_equals() -> None:
    a = RankLog(0, "a", ("Traceback (most recent call last):",), exited=True, exit_code=1, exited_at=5.0)
    b = RankLog(1, "b", ("Traceback (most recent call last):",), exited=True, exit_code=1, exited_at=3.0)
    d = diagnose([a, b])
    assert d is not None and d.rank == 1


def test_diagnose_exit_without_error_line() -> None:
    d = diagnose([RankLog(2, "c", ("Load weight begin.",), exited=True, exit_code=137)])
    assert d is not None and d.cause.key == "exited" and "137" in d.cause.title


def test_nothing_wrong_gives_no_diagnosis() -> None:
    assert diagnose([RankLog(0, "a", ("Load weight begin.",))]) is None
