"""Response bodies of the node-0 API, shaped as the real 0.5.23 server builds them.

Pure functions of the server State (no HTTP here): http_api.py routes to them.
"""

import json
import shlex
import time
from datetime import UTC, datetime

from sglang.version import __version__

VALID_LOAD_SECTIONS = ("core", "memory", "spec", "lora", "disagg", "queues", "all")  # load_snapshot.py:228
MAX_TOTAL_TOKENS = 1021440
MAX_RUNNING_REQUESTS = 1024


def context_len(st):
    return int(st.args.context_length or st.config.get("max_position_embeddings", 202752))


def model_info(st):
    """http_server.py:812 model_info()."""
    a = st.args
    return {"model_path": a.model_path, "served_model_name": st.model_id, "tokenizer_path": a.tokenizer_path,
            "is_generation": True, "preferred_sampling_params": a.preferred_sampling_params,
            "weight_version": a.weight_version, "load_format": a.load_format,
            "reasoning_parser": a.reasoning_parser, "tool_call_parser": a.tool_call_parser,
            "disaggregation_mode": a.disaggregation_mode,
            "has_image_understanding": False, "has_audio_understanding": False,
            "model_type": st.config.get("model_type"), "architectures": st.config.get("architectures")}


def server_info(st):
    """http_server.py:863 server_info(): build_server_info (utils/common.py:3584) + live state."""
    info = dict(st.args.values)
    info["launch_command"] = shlex.join(["python3", "-m", "sglang.launch_server"] + st.argv)
    info.update({"max_total_num_tokens": MAX_TOTAL_TOKENS, "max_req_input_len": context_len(st) - 5})
    info["kv_events"] = None
    info.update({
        "startup_time": st.startup_time,
        "internal_states": [{"last_gen_throughput": 0.0, "memory_usage": {
            "weight": 92.61, "kvcache": 28.07, "token_capacity": MAX_TOTAL_TOKENS, "graph": 1.52},
            "effective_max_running_requests_per_dp": MAX_RUNNING_REQUESTS}],
        "version": __version__,
        "frontend": "python",
    })
    if st.args.speculative_algorithm:  # scheduler_components/internal_state.py:125
        from sglang._sim.bench import knobs

        info["internal_states"][0]["avg_spec_accept_length"] = knobs().accept_length
    return info


def model_card(st, name):
    return {"id": name, "object": "model", "created": st.created, "owned_by": "sglang", "root": name,
            "parent": None, "max_model_len": context_len(st)}


def models(st):
    """http_server.py:1993 available_models()."""
    return {"object": "list", "data": [model_card(st, st.model_id)]}


def model_not_found(model):
    """http_server.py:2031 retrieve_model() for an unknown name (404)."""
    return {"error": {"message": f"The model '{model}' does not exist", "type": "invalid_request_error",
                      "param": "model", "code": "model_not_found"}}


def load_snapshot(st):
    """managers/scheduler_components/load_inquirer.py:109 get_loads(): one DP rank."""
    running = st.running()
    used = running * 256
    return {
        "timestamp": time.time(), "dp_rank": 0, "num_running_reqs": running, "num_waiting_reqs": 0,
        "num_waiting_uncached_tokens": 0, "num_used_tokens": used, "num_total_tokens": used,
        "num_active_tokens": used, "num_prealloc_ready_tokens": 0, "max_total_num_tokens": MAX_TOTAL_TOKENS,
        "max_running_requests": MAX_RUNNING_REQUESTS, "token_usage": round(used / MAX_TOTAL_TOKENS, 4),
        "gen_throughput": 0.0, "cache_hit_rate": 0.0, "utilization": round(running / MAX_RUNNING_REQUESTS, 4),
        "total_prefill_uncached_tokens": st.prompt_tokens, "total_prefill_busy_us": 0, "decode_moments": None,
        # sections as msgspec.structs.asdict gives them (load_snapshot.py:254)
        "memory": {"weight_gb": 92.61, "kv_cache_gb": 28.07, "graph_gb": 1.52, "token_capacity": MAX_TOTAL_TOKENS},
        "disaggregation": {"mode": "null", "prefill_bootstrap_queue_reqs": 0, "prefill_inflight_queue_reqs": 0,
                           "decode_prealloc_queue_reqs": 0, "decode_transfer_queue_reqs": 0,
                           "decode_retracted_queue_reqs": 0, "kv_transfer_speed_gb_s": 0.0,
                           "kv_transfer_latency_ms": 0.0},
        "queues": {"waiting": 0, "grammar": 0, "paused": 0, "retracted": 0, "prealloc_ready": 0},
    }


SECTIONS = (("memory", "memory"), ("speculative", "spec"), ("lora", "lora"),
            ("disaggregation", "disagg"), ("queues", "queues"))


def loads(st, include=None, fmt=None, dp_rank=None):
    """entrypoints/v1_loads.py:96 get_loads() -> (status, body, content type)."""
    include_list = [s.strip() for s in include.split(",")] if include else None
    include_set = set(include_list) if include_list else None
    if include_set is not None and not include_set <= set(VALID_LOAD_SECTIONS):
        bad = include_set - set(VALID_LOAD_SECTIONS)
        return 400, {"detail": f"Invalid include sections: {bad}. Valid options: "
                               f"{sorted(VALID_LOAD_SECTIONS)}"}, "application/json"
    snap = load_snapshot(st)
    if dp_rank is not None and dp_rank != 0:
        rows = []
    else:
        load = {k: v for k, v in snap.items() if k not in dict(SECTIONS)}
        if include_set is None or include_set != {"core"}:
            for field, name in SECTIONS:
                if field in snap and (include_set is None or "all" in include_set or name in include_set):
                    load[field] = snap[field]
        rows = [load]
    if fmt == "prometheus":  # v1_loads.py:62 _format_loads_prometheus
        prefixes = {"speculative": "spec", "disaggregation": "disagg"}
        lines = []
        for load in rows:
            for key, value in load.items():
                samples = []
                if isinstance(value, dict):
                    samples = [(f"sglang_{prefixes.get(key, key)}_{k}", v) for k, v in value.items()]
                elif key != "dp_rank":
                    samples = [(f"sglang_{key}", value)]
                for metric, v in samples:
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        lines += [f"# TYPE {metric} gauge", f'{metric}{{dp_rank="0"}} {v}']
        return 200, "\n".join(lines) + "\n", "text/plain; version=0.0.4; charset=utf-8"
    return 200, {"timestamp": datetime.now(UTC).isoformat(), "version": __version__,
                 "accelerator": "NVIDIA H200", "num_accelerators": st.args.tp_size * st.args.pp_size,
                 "loads": rows}, "application/json"


def metrics(st):
    """Prometheus text of the scheduler (observability/metrics_collector.py:365) and tokenizer
    (metrics_collector.py:1856) collectors, labels as metrics_collector.py:1382 / 1807."""
    name = json.dumps(st.model_id)
    sched = f'model_name={name},engine_type="unified",tp_rank="0",pp_rank="0",moe_ep_rank="0"'
    tok = f'model_name={name},engine_type="unified",is_streaming="false"'
    rows = [
        ("sglang:num_running_reqs", "The number of running requests.", "gauge", sched, float(st.running())),
        ("sglang:num_queue_reqs", "The number of requests in the waiting queue.", "gauge", sched, 0.0),
        ("sglang:gen_throughput", "The generation throughput (token/s).", "gauge", sched, 0.0),
        ("sglang:token_usage", "The token usage.", "gauge", sched, round(st.running() * 256 / MAX_TOTAL_TOKENS, 4)),
        ("sglang:prompt_tokens_total", "Number of prefill tokens processed.", "counter", tok, float(st.prompt_tokens)),
        ("sglang:generation_tokens_total", "Number of generation tokens processed.", "counter", tok,
         float(st.generation_tokens)),
        ("sglang:num_requests_total", "Number of requests processed.", "counter", tok, float(st.requests)),
    ]
    lines = []
    for metric, doc, kind, labels, value in rows:
        lines += [f"# HELP {metric} {doc}", f"# TYPE {metric} {kind}", f"{metric}{{{labels}}} {value}"]
    return "\n".join(lines) + "\n"
