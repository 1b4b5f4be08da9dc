"""HTTP endpoints and status codes of the simulator against the real 0.5.23 server
(sglang/srt/entrypoints/http_server.py, v1_loads.py, utils/auth.py, and the dummy health server of
ranks >= 1, utils/common.py:3624)."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.unit.sim.conftest import free_port, http

pytestmark = pytest.mark.slow

# LoadSnapshot's flat fields, in order (managers/load_snapshot.py:196-219)
CORE_KEYS = ["timestamp", "dp_rank", "num_running_reqs", "num_waiting_reqs", "num_waiting_uncached_tokens",
             "num_used_tokens", "num_total_tokens", "num_active_tokens", "num_prealloc_ready_tokens",
             "max_total_num_tokens", "max_running_requests", "token_usage", "gen_throughput", "cache_hit_rate",
             "utilization", "total_prefill_uncached_tokens", "total_prefill_busy_us", "decode_moments"]
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def group(launcher, model: Path, *extra: str, **env: str):
    dist, p0, p1 = free_port(), free_port(), free_port()
    common = ["--model-path", str(model), "--tp-size", "16", "--nnodes", "2", "--dist-init-addr",
              f"127.0.0.1:{dist}", "--host", "127.0.0.1", "--served-model-name", "glm-5", *extra]
    r0 = launcher([*common, "--node-rank", "0", "--port", str(p0)], **env)
    r1 = launcher([*common, "--node-rank", "1", "--port", str(p1)], **env)
    return r0, r1, f"http://127.0.0.1:{p0}", f"http://127.0.0.1:{p1}"


def test_node0_starting_ready_and_auth(launcher, model_dir: Path) -> None:
    r0, r1, base, _ = group(launcher, model_dir, "--api-key", "k", "--enable-metrics",
                            SGLANG_SIM_WARMUP_SECONDS="3")
    r0.wait_for("Uvicorn running on")
    for path in ("/health", "/health_generate", "/ready"):  # ServerStatus.Starting: 503, no key needed
        assert http(base + path)[0] == 503, path
    assert http(base + "/ping", key="k")[0] == 503
    r0.wait_for("The server is fired up and ready to roll!")
    for path in ("/health", "/health_generate", "/ready", "/metrics"):  # auth.py:107: probes bypass the key
        assert http(base + path)[0] == 200, path
    assert http(base + "/model_info") == (401, b'{"error":"Unauthorized"}')
    assert http(base + "/v1/loads", key="wrong")[0] == 401
    assert http(base + "/ping", key="k")[0] == 200
    assert http(base + "/nope", key="k") == (404, b'{"detail":"Not Found"}')
    assert http(base + "/v1/models", {"x": 1}, "k") == (405, b'{"detail":"Method Not Allowed"}')


def test_node0_info_endpoints(launcher, model_dir: Path) -> None:
    r0, _, base, _ = group(launcher, model_dir, "--api-key", "k")
    r0.wait_for("The server is fired up and ready to roll!")
    info = json.loads(http(base + "/server_info", key="k")[1])
    assert info["version"] == "0.5.23" and info["frontend"] == "python" and info["api_key"] == "k"
    assert info["tp_size"] == 16 and "launch_command" in info and "internal_states" in info
    assert json.loads(http(base + "/get_server_info", key="k")[1])["version"] == "0.5.23"
    assert "Endpoint '/get_server_info' is deprecated" in r0.text()
    model = json.loads(http(base + "/model_info", key="k")[1])
    assert model["served_model_name"] == "glm-5" and model["model_type"] == "glm_moe_dsa"
    assert json.loads(http(base + "/get_model_info", key="k")[1]) == model
    card = json.loads(http(base + "/v1/models", key="k")[1])["data"][0]
    assert card["id"] == "glm-5" and card["owned_by"] == "sglang"
    assert json.loads(http(base + "/v1/models/glm-5", key="k")[1])["id"] == "glm-5"
    code, body = http(base + "/v1/models/other", key="k")
    assert code == 404 and json.loads(body)["error"]["code"] == "model_not_found"
    assert http(base + "/metrics")[0] == 404  # no --enable-metrics: no /metrics mount


def test_v1_loads_shape(launcher, model_dir: Path) -> None:
    r0, _, base, _ = group(launcher, model_dir)
    r0.wait_for("The server is fired up and ready to roll!")
    body = json.loads(http(base + "/v1/loads")[1])
    assert list(body) == ["timestamp", "version", "accelerator", "num_accelerators", "loads"]
    assert body["version"] == "0.5.23" and body["num_accelerators"] == 16
    load = body["loads"][0]
    assert list(load)[:len(CORE_KEYS)] == CORE_KEYS
    assert set(load) - set(CORE_KEYS) == {"memory", "disaggregation", "queues"}
    assert set(load["memory"]) == {"weight_gb", "kv_cache_gb", "graph_gb", "token_capacity"}
    core = json.loads(http(base + "/v1/loads?include=core")[1])["loads"][0]
    assert list(core) == CORE_KEYS
    assert list(json.loads(http(base + "/v1/loads?include=queues")[1])["loads"][0])[-1] == "queues"
    code, bad = http(base + "/v1/loads?include=bogus")
    assert code == 400 and "Invalid include sections" in json.loads(bad)["detail"]
    text = http(base + "/v1/loads?format=prometheus")[1].decode()
    assert '# TYPE sglang_num_running_reqs gauge\nsglang_num_running_reqs{dp_rank="0"} 0' in text
    assert 'sglang_memory_token_capacity{dp_rank="0"}' in text and 'sglang_disagg_mode' not in text


def test_other_rank_serves_the_dummy_health_server(launcher, model_dir: Path) -> None:
    r0, r1, _, base1 = group(launcher, model_dir, "--api-key", "k", "--enable-metrics")
    r0.wait_for("The server is fired up and ready to roll!")
    r1.wait_for("Dummy health check server started in background thread at 127.0.0.1:")
    for path in ("/health", "/health_generate", "/ping", "/metrics"):  # no auth on the dummy server
        assert http(base1 + path)[0] == 200, path
    for path in ("/v1/loads", "/server_info", "/ready", "/v1/models"):
        assert http(base1 + path) == (404, b'{"detail":"Not Found"}'), path


def test_running_requests_are_visible_and_sigterm_drains(launcher, model_dir: Path) -> None:
    r0, r1, base, _ = group(launcher, model_dir, "--enable-metrics", SGLANG_SIM_REQUEST_SECONDS="1.5")
    r0.wait_for("The server is fired up and ready to roll!")
    pool = ThreadPoolExecutor(4)
    first = pool.submit(http, base + "/v1/chat/completions", CHAT)
    time.sleep(0.4)
    assert 'sglang:num_running_reqs{model_name="glm-5",engine_type="unified",tp_rank="0",pp_rank="0",' \
           'moe_ep_rank="0"} 1.0' in http(base + "/metrics")[1].decode()
    assert json.loads(http(base + "/v1/loads")[1])["loads"][0]["num_running_reqs"] == 1
    r0.proc.send_signal(signal.SIGTERM)
    r0.wait_for("SIGTERM received. signum=None frame=None. Draining requests and shutting down...")
    second = pool.submit(http, base + "/v1/chat/completions", CHAT)  # still accepted while draining
    r0.wait_for("Gracefully exiting... Remaining number of requests")
    assert http(base + "/health")[0] == 503 and http(base + "/ready")[0] == 503
    assert "Health check request received during shutdown. Returning 503." in r0.text()
    assert first.result(10)[0] == 200 and second.result(10)[0] == 200
    assert r0.wait_exit(20) == 0 and r1.wait_exit(20) == 0  # rank 1 stops on node 0's ShutdownReq
    assert "Gracefully exiting... Remaining number of requests 0. Remaining requests remaining_rids=[]." in r0.text()
    assert "Finished server process" in r0.text()
