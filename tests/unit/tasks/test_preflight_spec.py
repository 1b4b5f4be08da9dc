"""The spec check: limits and versions inside the runtime, GPUs idle (pure), and the node-side
runtime_env program run for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from glm5cluster.commands import CommandResult
from glm5cluster.facts.runtime_env import (
    ComputeApp,
    RuntimeEnv,
    parse_compute_apps,
    parse_runtime_env,
)
from glm5cluster.tasks import agents
from glm5cluster.tasks import preflight_spec as S

CAPTURE = Path(__file__).parents[2] / "facts" / "runtime_env" / "runtime-env_dev-machine_python3.txt"


def test_real_capture_parses() -> None:
    env = parse_runtime_env(CommandResult("python3", 0, CAPTURE.read_text()))
    assert env.ok and env.memlock == 8388608 and env.nofile == 20000 and env.shm_bytes == 25276063744
    assert env.versions == {} and not env.dev_infiniband


def test_program_runs_and_answers_in_its_protocol() -> None:
    out = subprocess.run([sys.executable, "-c", agents.source("runtime_env")], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    env = parse_runtime_env(CommandResult("", 0, "noise\n" + out))
    assert env.ok and env.nofile > 0 and env.memlock != 0


def test_no_answer_is_a_problem_naming_the_node() -> None:
    env = parse_runtime_env(CommandResult("docker run", 125, "", "docker: Error response from daemon: no such image"))
    probs, _ = S.check_runtime_env("n1", env, True, True, False)
    assert probs[0].host == "n1" and "no such image" in probs[0].message


def test_container_spec_limits() -> None:
    small = RuntimeEnv(True, memlock=65536, nofile=1024, shm_bytes=64 << 20, dev_infiniband=False)
    probs, _ = S.check_runtime_env("n2", small, True, True, True)
    msgs = " | ".join(p.message for p in probs)
    assert "memlock is 64 KiB in the container spec" in msgs and "nofile is 1024" in msgs
    assert "/dev/shm is 64 MiB in the container spec" in msgs and "/dev/infiniband is not visible" in msgs
    good = RuntimeEnv(True, memlock=-1, nofile=1048576, shm_bytes=32 << 30, dev_infiniband=True,
                      versions={"sglang": "0.5.23", "torch": "2.9.1"})
    probs, note = S.check_runtime_env("n2", good, True, True, True)
    assert probs == [] and "memlock unlimited" in note and "sglang 0.5.23" in note
    # venv: the unit sets memlock/nofile; only /dev/shm and versions are judged
    assert S.check_runtime_env("n2", small, False, True, True)[0][0].message.startswith("/dev/shm is 64 MiB")


def test_version_mismatch_names_the_odd_node() -> None:
    def env(torch: str) -> RuntimeEnv:
        return RuntimeEnv(True, -1, 1 << 20, 1 << 34, False, {"sglang": "0.5.23", "torch": torch,
                                                               "nvidia-nccl-cu12": "2.27.3"})
    probs = S.check_version_parity(["a", "b", "c"], {"a": env("2.9.1"), "b": env("2.8.0"), "c": env("2.9.1")})
    assert [(p.host, p.message.split(" (")[0]) for p in probs] == [("b", "torch 2.8.0 differs from the replica's 2.9.1")]


def test_busy_gpu() -> None:
    # hand-made (no real capture of a busy node): the csv shape nvidia-smi documents for this query
    apps = parse_compute_apps(CommandResult("", 0, "31337, /usr/bin/python3, 70000\n"))
    assert apps == (ComputeApp(31337, "/usr/bin/python3", 70000),)
    probs, _ = S.check_gpus_idle("n1", apps)
    assert "GPUs are busy: /usr/bin/python3 (pid 31337, 70000 MiB)" in probs[0].message
    assert S.check_gpus_idle("n1", ()) == ([], "GPUs idle")
    assert parse_compute_apps(CommandResult("", 127, "", "nvidia-smi: not found")) is None


def test_fabric_manager_on_nvswitch_boards() -> None:
    from glm5cluster.facts.nvidia_health import FabricManager

    assert S.check_fabric_manager("n1", FabricManager(True, "active", "580.65.06")) == (
        [], "fabric manager active 580.65.06")
    probs, _ = S.check_fabric_manager("n1", FabricManager(True, "failed"))
    assert probs[0].message == "nvidia-fabricmanager is failed on an NVSwitch board"
    probs, _ = S.check_fabric_manager("n2", FabricManager(False, "inactive"))
    assert probs[0].host == "n2" and "not installed" in probs[0].message
