"""The simulated SGLang server, run as real processes on localhost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from glm5cluster.lab.sim.sglang_sim.build import build_wheel
from tests.unit.sim.conftest import free_port, http, sim_env

pytestmark = pytest.mark.slow


def group_args(model: Path, nnodes: int, rank: int, dist_port: int, port: int, *extra: str) -> list[str]:
    return ["--model-path", str(model), "--tp-size", str(8 * nnodes), "--nnodes", str(nnodes),
            "--node-rank", str(rank), "--dist-init-addr", f"127.0.0.1:{dist_port}",
            "--host", "127.0.0.1", "--port", str(port), *extra]


def run_once(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sglang.launch_server", *argv], env=sim_env(**env),
                          capture_output=True, text=True, timeout=60)


def test_unknown_flag_exits_2_with_argparse_error(model_dir: Path) -> None:
    res = run_once(["--model-path", str(model_dir), "--nsa-prefill-backend", "tilelang"])
    assert res.returncode == 2
    assert "launch_server.py: error: unrecognized arguments: --nsa-prefill-backend tilelang" in res.stderr


@pytest.mark.parametrize(("argv", "needle"), [
    (["--tp-size", "x"], "argument --tp-size/--tensor-parallel-size: invalid int value: 'x'"),
    (["--attention-backend", "nope"], "argument --attention-backend: invalid choice: 'nope'"),
    (["--port"], "argument --port: expected one argument"),
])
def test_bad_values_exit_2(argv: list[str], needle: str) -> None:
    res = run_once(["--model-path", "/nonexistent", *argv])
    assert res.returncode == 2 and needle in res.stderr


def test_parser_api_and_abbreviation() -> None:
    code = ("import argparse, sglang; from sglang.srt.server_args import ServerArgs;"
            "p = argparse.ArgumentParser(); ServerArgs.add_cli_args(p);"
            "a = p.parse_args(['--model', 'm', '--tp', '16', '--dsa-prefill-backend', 'tilelang']);"
            "print(sglang.__version__, a.model_path, a.tp_size, a.dsa_prefill_backend)")
    res = subprocess.run([sys.executable, "-c", code], env=sim_env(), capture_output=True, text=True)
    assert res.stdout.split() == ["0.5.23", "m", "16", "tilelang"], res.stderr


def test_two_rank_group_serves(launcher, model_dir: Path) -> None:
    dist, p0, p1 = free_port(), free_port(), free_port()
    extra = ("--served-model-name", "glm-5-fp8", "--reasoning-parser", "glm45",
             "--tool-call-parser", "glm47", "--api-key", "sekret", "--enable-metrics")
    r0 = launcher(group_args(model_dir, 2, 0, dist, p0, *extra))
    r1 = launcher(group_args(model_dir, 2, 1, dist, p1, *extra))
    r0.wait_for("The server is fired up and ready to roll!")
    log0 = r0.text()
    for line in ("server_args={", "TP0] Init parallel begin.",
                 "TP7] Load weight begin.", "type=GlmMoeDsaForCausalLM, quant=fp8",
                 "KV Cache is allocated.", "Capture target decode CUDA graph begin.",
                 "Capture target decode CUDA graph end."):
        assert line in log0
    assert "TP15] Load weight end." in r1.text()
    base = f"http://127.0.0.1:{p0}"
    assert http(base + "/health")[0] == 200
    assert http(base + "/v1/models")[0] == 401  # api key enforced
    assert http(base + "/v1/models", key="wrong")[1] == b'{"error":"Unauthorized"}'
    status, body = http(base + "/v1/models", key="sekret")
    card = json.loads(body)["data"][0]
    assert status == 200 and card["id"] == "glm-5-fp8" and card["max_model_len"] == 202752
    msgs = [{"role": "user", "content": "What is 1+3?"}]
    think = json.loads(http(base + "/v1/chat/completions", {"messages": msgs}, "sekret")[1])
    assert think["choices"][0]["message"]["reasoning_content"]
    instruct = json.loads(http(base + "/v1/chat/completions", {
        "messages": msgs, "chat_template_kwargs": {"enable_thinking": False}}, "sekret")[1])
    assert instruct["choices"][0]["message"]["reasoning_content"] is None
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    called = json.loads(http(base + "/v1/chat/completions", {"messages": msgs, "tools": [tool]}, "sekret")[1])
    choice = called["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    info = json.loads(http(base + "/server_info", key="sekret")[1])
    assert info["version"] == "0.5.23" and info["served_model_name"] == "glm-5-fp8"
    assert json.loads(http(base + "/model_info", key="sekret")[1])["model_type"] == "glm_moe_dsa"
    assert b"sglang:num_running_reqs" in http(base + "/metrics")[1]  # no key needed
    # rank 1: dummy health server
    assert http(f"http://127.0.0.1:{p1}/health")[0] == 200
    assert http(f"http://127.0.0.1:{p1}/v1/models") == (404, b'{"detail":"Not Found"}')
    # killing rank 1 fails the group
    r1.proc.send_signal(signal.SIGKILL)
    assert r0.wait_exit(15) != 0
    assert "NCCL error: remote process exited or there was a network error" in r0.text()


def test_sigterm_on_node0_drains_and_stops_the_group(launcher, model_dir: Path) -> None:
    dist, p0, p1 = free_port(), free_port(), free_port()
    r0 = launcher(group_args(model_dir, 2, 0, dist, p0))
    r1 = launcher(group_args(model_dir, 2, 1, dist, p1))
    r0.wait_for("The server is fired up and ready to roll!")
    r1.proc.send_signal(signal.SIGTERM)  # a worker only logs SIGTERM (engine.py:1268)
    r1.wait_for("SIGTERM received on node_rank 1; waiting for the rank-0 ShutdownReq broadcast")
    r1.proc.send_signal(signal.SIGTERM)
    assert r1.proc.poll() is None
    r0.proc.send_signal(signal.SIGTERM)
    assert r0.wait_exit(15) == 0
    assert r1.wait_exit(15) == 0


def test_rank_that_never_joins_times_out_on_node0(launcher, model_dir: Path) -> None:
    r0 = launcher(group_args(model_dir, 2, 0, free_port(), free_port()), SGLANG_SIM_RENDEZVOUS_TIMEOUT="2")
    assert r0.wait_exit(20) != 0
    assert "torch.distributed.DistStoreError: Timed out after 3 seconds waiting for clients. 1/2 clients joined." in r0.text()


def test_member_without_head_times_out(launcher, model_dir: Path) -> None:
    r1 = launcher(group_args(model_dir, 2, 1, free_port(), free_port()), SGLANG_SIM_RENDEZVOUS_TIMEOUT="2")
    assert r1.wait_exit(20) != 0
    assert "torch.distributed.DistNetworkError: The client socket has timed out after 2000ms" in r1.text()


def test_tp_not_divisible_by_nnodes(model_dir: Path) -> None:
    argv = group_args(model_dir, 2, 0, free_port(), free_port())
    argv[argv.index("--tp-size") + 1] = "15"
    res = run_once(argv)
    assert res.returncode == 1 and "must be divisible by nnodes" in res.stderr


def test_missing_shard_fails(tmp_path: Path, model_dir: Path) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    for f in model_dir.iterdir():
        if f.name != "model-00002-of-00003.safetensors":
            (broken / f.name).write_bytes(f.read_bytes())
    res = run_once(["--model-path", str(broken), "--tp-size", "8"])
    assert res.returncode == 1
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{broken}/model-00002-of-00003.safetensors'" in res.stderr


def test_truncated_shard_fails(tmp_path: Path, model_dir: Path) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    for f in model_dir.iterdir():
        data = f.read_bytes()
        (broken / f.name).write_bytes(data[:-100] if f.name.startswith("model-00001") else data)
    res = run_once(["--model-path", str(broken), "--tp-size", "8"])
    assert res.returncode == 1 and "MetadataIncompleteBuffer" in res.stderr


@pytest.mark.parametrize(("env", "needle"), [
    ({"SGLANG_SIM_OOM_AT_LOAD": "1"}, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate"),
    ({"SGLANG_SIM_OLD_TRANSFORMERS": "1"}, "KeyError: 'glm_moe_dsa'"),
    ({"SGLANG_SIM_GLOO_FAIL": "1"}, "Gloo connectFullMesh failed"),
    ({"SGLANG_SIM_CRASH_AFTER": "0.2", "SGLANG_SIM_LOAD_SECONDS": "5"}, "Scheduler hit an exception"),
])
def test_fault_injection_wording(model_dir: Path, env: dict[str, str], needle: str) -> None:
    res = run_once(["--model-path", str(model_dir), "--tp-size", "8", "--port", str(free_port())], **env)
    assert res.returncode == 1 and needle in res.stderr


def test_fault_restricted_to_other_rank_is_ignored(launcher, model_dir: Path) -> None:
    r0 = launcher(["--model-path", str(model_dir), "--port", str(free_port())],
                  SGLANG_SIM_OOM_AT_LOAD="1", SGLANG_SIM_FAULT_RANK="1")
    r0.wait_for("The server is fired up and ready to roll!")


def test_hang_in_rendezvous_makes_node0_time_out(launcher, model_dir: Path) -> None:
    dist = free_port()
    r0 = launcher(group_args(model_dir, 2, 0, dist, free_port()), SGLANG_SIM_RENDEZVOUS_TIMEOUT="2")
    launcher(group_args(model_dir, 2, 1, dist, free_port()), SGLANG_SIM_HANG_RENDEZVOUS="1")
    assert r0.wait_exit(20) != 0 and "DistStoreError" in r0.text()


def test_no_driver_is_reported(model_dir: Path) -> None:
    env = sim_env(SGLANG_SIM_SKIP_GPU_CHECK="0")
    env["PATH"] = "/nonexistent"
    res = subprocess.run([sys.executable, "-m", "sglang.launch_server", "--model-path", str(model_dir)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "Found no NVIDIA driver on your system" in res.stderr


def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    wheel = Path(build_wheel(str(tmp_path / "dist")))
    assert wheel.name == "sglang-0.5.23-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "sglang/srt/server_options.json" in names
    assert "sglang-0.5.23.dist-info/entry_points.txt" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "-q", "--no-index", str(wheel)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([str(venv / "bin" / "sglang"), "serve", "--bogus"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "sglang serve: error: unrecognized arguments: --bogus" in res.stderr
    res = subprocess.run([str(venv / "bin" / "python"), "-c", "import sglang; print(sglang.__version__)"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "0.5.23"


def _fake_smi(tmp_path: Path, gpus: int, mib: int) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + "".join(f"echo 'NVIDIA H100 80GB HBM3, {mib}'\n" for _ in range(gpus)))
    smi.chmod(0o755)
    return {"SGLANG_SIM_SKIP_GPU_CHECK": "0", "PATH": str(bindir)}


def test_too_few_gpus_for_tp(tmp_path: Path, model_dir: Path) -> None:
    res = run_once(["--model-path", str(model_dir), "--tp-size", "8"], **_fake_smi(tmp_path, 4, 81559))
    assert res.returncode == 1 and "CUDA error: invalid device ordinal" in res.stderr


def test_fp8_on_8xh100_runs_out_of_memory(tmp_path: Path, model_dir: Path) -> None:
    res = run_once(["--model-path", str(model_dir), "--tp-size", "8"], **_fake_smi(tmp_path, 8, 81559))
    assert res.returncode == 1 and "torch.OutOfMemoryError: CUDA out of memory" in res.stderr
