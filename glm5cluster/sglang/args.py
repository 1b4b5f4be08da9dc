"""The launch-argument builder: what follows ``python -m sglang.launch_server`` on one node.

Every rank gets the same argv except ``--node-rank``: SGLang builds one ``ServerArgs`` per
process from its own command line, so a flag that differs between ranks (a parser, the served
name) is a configuration that differs between the processes of one model. Only rank 0 serves
the API, but ranks >= 1 read the same arguments. The API key is never in argv (see
``launcher.py``).

``serving.extra_args`` are appended after the planner's flags. They may not set a flag the
planner owns (model path, parallel layout, host/port, served name, secrets), and may replace a
cookbook flag (``--mem-fraction-static``, the speculative settings, the parsers ...) only when
that flag is named in ``serving.override_flags``; the cookbook's own value is then dropped, so
the argv holds the flag once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from glm5cluster.errors import PlanError
from glm5cluster.model.catalog import (
    EAGLE_NUM_DRAFT_TOKENS,
    EAGLE_NUM_STEPS,
    EAGLE_TOPK,
    INDEX_TOPK_PATTERN,
    REASONING_PARSER,
    TOOL_CALL_PARSER,
    allreduce_fusion_multi_node_ok,
)
from glm5cluster.model.inventory import Inventory
from glm5cluster.sglang.options import OptionTable, check_argv, table_for
from glm5cluster.sglang.profiles import profile_for
from glm5cluster.topology import RankAssignment, Replica, Topology

# Flags the planner owns: extra_args may not set them (the planner would be lying).
PLANNER_FLAGS = {
    "model_path", "tp_size", "nnodes", "node_rank", "dist_init_addr", "host", "port",
    "served_model_name", "api_key", "admin_api_key", "ssl_keyfile_password",
}
SECRET_DESTS = {"api_key", "admin_api_key", "ssl_keyfile_password"}


def served_model_name(inventory: Inventory) -> str:
    """The model id clients send: the features' name, else the repo id (``zai-org/GLM-5-FP8``)."""
    return inventory.serving.features.served_model_name or inventory.model.repo


def listen_host(replica: Replica) -> str:
    """Where the server listens: ``::`` when the endpoint is IPv6 (on Linux it also accepts IPv4),
    else ``0.0.0.0``. Real 0.5.23 knows both wildcards (``srt/server_args.py:458-468``, ``url``:
    it talks to itself on ``::1`` / ``127.0.0.1``). A DNS name gets ``0.0.0.0``."""
    return "::" if ":" in replica.head.node.ssh.address else "0.0.0.0"


def allreduce_fusion_enabled(replica: Replica) -> bool:
    """The catalog's FlashInfer allreduce fusion, dropped where 0.5.23 would refuse it (multi-node
    on anything but Blackwell: see ``catalog.allreduce_fusion_multi_node_ok``)."""
    dep = replica.deployment
    return dep.backends.allreduce_fusion and (replica.nnodes == 1 or allreduce_fusion_multi_node_ok(dep.gpu))


def speculative_enabled(inventory: Inventory, replica: Replica) -> bool:
    want = inventory.serving.features.speculative_decoding
    return replica.deployment.eagle_supported if want is None else want


def build_args(inventory: Inventory, topology: Topology, replica: Replica,
               rank: RankAssignment) -> list[str]:
    """The SGLang server arguments for one rank of one replica (full flag names only)."""
    if rank not in replica.ranks or replica not in topology.replicas:
        raise ValueError("rank must belong to replica, and replica to topology")
    base = cookbook_args(inventory, replica, rank)
    table = table_for(inventory.serving.sglang_version)
    errors = [p for p in extra_args_problems(inventory, set(option_dests(base, table))) if not p.warning]
    if errors:
        raise errors[0]
    extra = list(inventory.serving.extra_args)
    overridden = set(option_dests(extra, table)) & set(option_dests(base, table))
    return _drop(base, overridden, table) + extra


def cookbook_args(inventory: Inventory, replica: Replica, rank: RankAssignment) -> list[str]:
    """The planner's own arguments for one rank (before ``serving.extra_args``)."""
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
    if allreduce_fusion_enabled(replica):
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
    a += ["--served-model-name", served_model_name(inventory)]
    if feats.tool_call_parser:
        a += ["--tool-call-parser", TOOL_CALL_PARSER]
    if feats.enable_metrics:
        a += ["--enable-metrics"]
    a += ["--host", listen_host(replica), "--port", str(inventory.serving.http_port)]
    return a


def flag_groups(argv: list[str]) -> list[list[str]]:
    """Split an argv into ``[flag, value...]`` groups (values never start with ``--``)."""
    groups: list[list[str]] = []
    for arg in argv:
        if arg.startswith("--") or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups


def _dest(flag: str, table: OptionTable) -> str | None:
    spec = table.lookup(flag.partition("=")[0])
    return spec.dest if spec is not None else None


def option_dests(argv: list[str], table: OptionTable) -> list[str]:
    """The option dests an argv sets, in order."""
    return [d for g in flag_groups(argv) if (d := _dest(g[0], table)) is not None]


def _drop(argv: list[str], dests: set[str], table: OptionTable) -> list[str]:
    return [a for g in flag_groups(argv) if _dest(g[0], table) not in dests for a in g]


@dataclass(frozen=True)
class Override:
    """One cookbook flag that ``serving.extra_args`` replaces (named in ``override_flags``)."""

    flag: str
    cookbook: tuple[str, ...]  # the planner's values (empty for a switch)
    extra: tuple[str, ...]  # what extra_args sets


def overrides(inventory: Inventory, replica: Replica) -> list[Override]:
    """The cookbook flags that extra_args replaces on this replica (same on every rank)."""
    extra = list(inventory.serving.extra_args)
    table = table_for(inventory.serving.sglang_version)
    base = {d: g for g in flag_groups(cookbook_args(inventory, replica, replica.head))
            if (d := _dest(g[0], table)) is not None}
    out = []
    for g in flag_groups(extra):
        d = _dest(g[0], table)
        if d is not None and d in base:
            out.append(Override(g[0].partition("=")[0], tuple(base[d][1:]), tuple(g[1:])))
    return out


def extra_args_problems(inventory: Inventory, cookbook: set[str]) -> list[PlanError]:
    """Every problem of ``serving.extra_args`` and ``serving.override_flags`` (empty: fine).

    ``cookbook``: the option dests the planner emits (an extra argument that sets one of them
    must be named in ``serving.override_flags``)."""
    s = inventory.serving
    try:
        table = table_for(s.sglang_version)
    except PlanError as err:
        return [err]
    out: list[PlanError] = []
    extra = list(s.extra_args)
    if extra:
        report = check_argv(extra, table)
        for e in report.errors:
            out.append(PlanError(
                f"serving.extra_args: {e}",
                hint=f"every extra argument must be a full {table.name} option name "
                     "followed by its value(s) as separate list items",
                path="serving.extra_args"))
    named: dict[str, str] = {}
    for i, flag in enumerate(s.override_flags):
        spec = table.lookup(flag)
        where = f"serving.override_flags[{i}]"
        if spec is None:
            out.append(PlanError(f"{flag} is not an option of {table.name}",
                                 hint="name the flag exactly as extra_args writes it", path=where))
        elif spec.dest in PLANNER_FLAGS:
            out.append(PlanError(f"{flag} is decided by the planner and cannot be overridden",
                                 hint="use the inventory field instead (model, serving.http_port, features...)",
                                 path=where))
        else:
            named[spec.dest] = flag
    for g in flag_groups(extra):
        flag = g[0].partition("=")[0]
        spec = table.lookup(flag) if flag.startswith("-") else None
        if spec is None:
            continue
        if spec.dest in PLANNER_FLAGS:
            secret = spec.dest in SECRET_DESTS
            out.append(PlanError(
                f"serving.extra_args sets {flag}, which "
                + ("would put a secret in argv" if secret else "the planner decides"),
                hint=("reference the secret by name under serving.secrets" if secret else
                      "use the inventory field instead (model, serving.http_port, features...)"),
                path="serving.extra_args"))
        elif spec.dest in cookbook and spec.dest not in named:
            out.append(PlanError(
                f"serving.extra_args sets {flag}, which the cookbook settings already set; it "
                "would silently replace the planned value",
                hint=f"to replace it on purpose, name it: `serving.override_flags: [{flag}]`",
                path="serving.extra_args"))
    used = set(option_dests(extra, table))
    for dest, flag in named.items():
        if dest not in used:
            out.append(PlanError(f"serving.override_flags names {flag}, but serving.extra_args does not set it",
                                 hint=f"add {flag} and its value to serving.extra_args, or remove it here",
                                 path="serving.override_flags", warning=True))
    return out
