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


# 0.5.23 wording (templates of the real wheel; logs printed from them, see sglang_log/SOURCES.md)
NEW = "sglang-0.5.23-format_glm5-fp8-tp16-2node_node0_ready-then-sigterm-drain.log"


@pytest.mark.parametrize(("line", "phase"), [
    ("[2026-11-30 11:50:11 TP0] Init parallel begin.", Phase.RENDEZVOUS),
    ("[2026-11-30 11:50:12 TP0] Init parallel ends. elapsed=0.97 s", Phase.LOADING),
    ("[2026-11-30 11:50:14 TP0] Load weight end. elapsed=2.00 s, type=GlmMoeDsaForCausalLM, quant=fp8, "
     "fmt=e4m3, avail mem=95.19 GB, mem usage=43.31 GB.", Phase.KV_CACHE),
    ("[x TP0] KV Cache is allocated. dtype: torch.bfloat16, #tokens: 1021440, KV size: 75.52 GB", Phase.KV_CACHE),
    ("[x TP3] Capture target decode CUDA graph begin. backend=full, num_tokens_per_req=1, avail mem=13.98 GB",
     Phase.GRAPH_CAPTURE),
    ("[x TP3] Capture target verify CUDA graph end. bs=[1, 2], elapsed=0.20 s, mem usage=0.82 GB, "
     "avail mem=13.16 GB.", Phase.HTTP_UP),
    ("[x] Dummy health check server started in background thread at 10.0.0.2:30000", Phase.HTTP_UP),
])
def test_0_5_23_milestones(line: str, phase: Phase) -> None:
    assert phase_of([line]) == phase


def test_0_5_23_log_reaches_ready_then_drains_without_failure() -> None:
    log = lines(NEW)
    ready = next(i for i, text in enumerate(log) if "fired up and ready" in text)
    assert phase_of(log[:ready]) == Phase.HTTP_UP
    reading = read_log(log)
    assert reading.phase == Phase.READY and reading.failure is None
    follower = read_log(lines("sglang-0.5.23-format_glm5-fp8-tp16-2node_node1_ready-then-sigterm.log"))
    assert follower.phase == Phase.HTTP_UP and follower.failure is None


def test_0_5_23_oom_is_named() -> None:
    reading = read_log(lines("sglang-0.5.23-format_glm5-fp8-tp8_oom-during-weight-load.log"))
    assert reading.phase == Phase.LOADING
    assert reading.failure is not None and reading.failure.cause.key == "oom"
    assert "crash" in [f.cause.key for f in reading.findings]  # "Scheduler hit an exception" (scheduler.py:6372)


def test_old_wording_still_read_from_the_table() -> None:
    assert phase_of(["[x TP0] Init torch distributed ends. elapsed=1.00 s, mem usage=3.3 GB"]) == Phase.LOADING
    assert phase_of(["[x TP0] Capture cuda graph end. Time elapsed: 9.1 s. mem usage=1 GB."]) == Phase.HTTP_UP
