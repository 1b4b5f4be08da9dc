"""The launch-argument builder: what follows ``python -m sglang.launch_server`` on one node.

Every rank runs the model, so everything that shapes the model, the scheduler or the
collectives goes to every rank: model path, tp/nnodes/rank/dist-init, backends, speculative
decoding, DP attention, IndexCache, ``--mem-fraction-static``, ``--reasoning-parser`` (the
scheduler's grammar backend reads it on every rank: ``ReasonerGrammarBackend``) and
``--host/--port`` (ranks >= 1 bind a dummy health server there). Only rank 0 serves the API,
so only the head gets ``--served-model-name``, ``--tool-call-parser`` and ``--enable-metrics``.
The API key is never in argv (see ``launcher.py``).
"""

from __future__ import annotations

import json

from glm5cluster.errors import PlanError
from glm5cluster.model.catalog import (
    EAGLE_NUM_DRAFT_TOKENS,
    EAGLE_NUM_STEPS,
    EAGLE_TOPK,
    INDEX_TOPK_PATTERN,
    REASONING_PARSER,
    TOOL_CALL_PARSER,
)
from glm5cluster.model.inventory import Inventory
from glm5cluster.sglang.options import check_argv, table_for
from glm5cluster.sglang.profiles import profile_for
from glm5cluster.topology import RankAssignment, Replica, Topology

# Flags the planner owns: extra_args may not set them (the planner would be lying).
PLANNER_FLAGS = {
    "model_path", "tp_size", "nnodes", "node_rank", "dist_init_addr", "host", "port",
    "served_model_name", "api_key", "admin_api_key", "ssl_keyfile_password",
}


def served_model_name(inventory: Inventory) -> str:
    """The model id clients send: the features' name, else the repo id (``zai-org/GLM-5-FP8``)."""
    return inventory.serving.features.served_model_name or inventory.model.repo


def speculative_enabled(inventory: Inventory, replica: Replica) -> bool:
    want = inventory.serving.features.speculative_decoding
    return replica.deployment.eagle_supported if want is None else want


def build_args(inventory: Inventory, topology: Topology, replica: Replica,
               rank: RankAssignment) -> list[str]:
    """The SGLang server arguments for one rank of one replica (full flag names only)."""
    if rank not in replica.ranks or replica not in topology.replicas:
        raise ValueError("rank must belong to replica, and replica to topology")
    prof = profile_for(inventory.serving.sglang_version)
    dep = replica.deployment
    feats = inventory.serving.features
    b = dep.backends
    a = ["--model-path", inventory.model.weights_dir, "--tp-size", str(replica.tp_size)]
    if replica.nnodes > 1:
        a += ["--nnodes", str(replica.nnodes), "--node-rank", str(rank.node_rank),
              "--dist-init-addr", replica.dist_init_addr]
    if b.trust_remote_code:
        a += ["--trust-remote-code"]
    if b.expert_parallel_size is not None:
        a += ["--ep-size", str(b.expert_parallel_size)]
    if b.quantization:
        a += ["--quantization", b.quantization]
    if b.attention_backend_dsa:
        a += ["--attention-backend", prof.attention_backend_value]
    if b.dsa_decode_backend:
        a += [prof.dsa_decode_flag, b.dsa_decode_backend]
    if b.dsa_prefill_backend:
        a += [prof.dsa_prefill_flag, b.dsa_prefill_backend]
    if b.moe_runner_backend:
        a += ["--moe-runner-backend", b.moe_runner_backend]
    if b.chunked_prefill_size is not None:
        a += ["--chunked-prefill-size", str(b.chunked_prefill_size)]
    if b.watchdog_timeout is not None:
        a += ["--watchdog-timeout", str(b.watchdog_timeout)]
    if speculative_enabled(inventory, replica):
        if not dep.eagle_supported:
            raise PlanError(f"EAGLE speculative decoding is not supported on {dep.gpu.kind.value}",
                            hint="remove serving.features.speculative_decoding",
                            path="serving.features.speculative_decoding")
        a += ["--speculative-algorithm", "EAGLE",
              "--speculative-num-steps", str(EAGLE_NUM_STEPS),
              "--speculative-eagle-topk", str(EAGLE_TOPK),
              "--speculative-num-draft-tokens", str(EAGLE_NUM_DRAFT_TOKENS)]
    if feats.dp_attention:
        a += prof.dp_attention(replica.tp_size)
    if b.allreduce_fusion:
        a += prof.allreduce_fusion()
    if feats.index_cache:
        if not dep.index_cache_supported:
            raise PlanError("IndexCache is only available for zai-org/GLM-5-FP8",
                            hint="set serving.features.index_cache: false",
                            path="serving.features.index_cache")
        a += ["--json-model-override-args", json.dumps({"index_topk_pattern": INDEX_TOPK_PATTERN})]
    a += ["--mem-fraction-static", str(dep.mem_fraction_static)]
    if feats.reasoning_parser:
        a += ["--reasoning-parser", REASONING_PARSER]
    if rank.is_head:
        a += ["--served-model-name", served_model_name(inventory)]
        if feats.tool_call_parser:
            a += ["--tool-call-parser", TOOL_CALL_PARSER]
        if feats.enable_metrics:
            a += ["--enable-metrics"]
    a += ["--host", "0.0.0.0", "--port", str(inventory.serving.http_port)]
    a += _checked_extra_args(inventory)
    return a


def _checked_extra_args(inventory: Inventory) -> list[str]:
    extra = list(inventory.serving.extra_args)
    if not extra:
        return []
    table = table_for(inventory.serving.sglang_version)
    report = check_argv(extra, table)
    if report.errors:
        raise PlanError(f"serving.extra_args: {report.errors[0]}",
                        hint=f"every extra argument must be a full {table.name} option name "
                             "followed by its value(s) as separate list items",
                        path="serving.extra_args")
    for arg in extra:
        spec = table.lookup(arg.partition("=")[0]) if arg.startswith("-") else None
        if spec is not None and spec.dest in PLANNER_FLAGS:
            secret = spec.dest in ("api_key", "admin_api_key", "ssl_keyfile_password")
            raise PlanError(
                f"serving.extra_args sets {arg.partition('=')[0]}, which "
                + ("would put a secret in argv" if secret else "the planner decides"),
                hint=("reference the secret by name under serving.secrets" if secret else
                      "use the inventory field instead (model, serving.http_port, features...)"),
                path="serving.extra_args",
            )
    return extra
