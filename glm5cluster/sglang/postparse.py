"""The post-parse rules of real SGLang 0.5.23 that apply to our argv, checked before any host.

argparse accepts a command line that SGLang then refuses while it resolves the arguments
(``ServerArgs.resolve_once`` -> ``check_server_args`` and the resolution hooks): a served name
with ``:``, DP sizes that do not divide, a fusion backend the GPU cannot run across nodes.
Each rule below mirrors one check of the released wheel; ``RULES`` records its source as
``file:line`` under ``sglang/srt/`` of ``sglang-0.5.23`` (the wheel's own ``check_server_args``
also runs on the head, where it can, in the ``sglang.flagcheck`` step).

Values come from the argv, else from the option table's defaults (the captured
``add_cli_args`` defaults); a value that is only decided at resolution time (``None`` default)
is not checked. The rules are 0.5.23's: for the launch-era flag family only the
version-neutral ones run (the served name and ports).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from glm5cluster.sglang.options import OptionTable

Args = Mapping[str, object]


@dataclass(frozen=True)
class Rule:
    source: str  # file:line in sglang-0.5.23/sglang/srt/
    what: str
    check: Callable[[Args, str], str | None]  # (values, GPU architecture) -> problem or None
    dests: tuple[str, ...]  # the options the rule reads (to point at the inventory field)
    version_neutral: bool = False


@dataclass(frozen=True)
class PostParseProblem:
    message: str
    dests: tuple[str, ...]


def _int(v: object) -> int | None:
    try:
        return int(str(v))
    except (TypeError, ValueError):
        return None


def _tp_divisible_by_nnodes(a: Args, _: str) -> str | None:
    tp, pp, nn = _int(a.get("tp_size")), _int(a.get("pp_size")) or 1, _int(a.get("nnodes")) or 1
    if tp is not None and a.get("ep_join_mode") != "scale" and (tp * pp) % nn:
        return f"tp_size {tp} x pp_size {pp} is not divisible by nnodes {nn}"
    return None


def _no_multinode_dp(a: Args, _: str) -> str | None:
    dp, nn = _int(a.get("dp_size")) or 1, _int(a.get("nnodes")) or 1
    if dp > 1 and nn != 1:
        return f"--dp-size {dp} over {nn} nodes: multi-node data-parallel replicas are not supported; " \
               "use attention DP (--attn-dp-size) across nodes"
    return None


def _served_name(a: Args, _: str) -> str | None:
    name = a.get("served_model_name")
    schemes = ("s3://", "gs://", "az://")  # utils/runai_utils.py:48 (object-store URIs are exempt)
    if isinstance(name, str) and ":" in name and not name.lower().startswith(schemes):
        return f"served model name {name!r} contains ':', which SGLang reserves for 'model:adapter' (LoRA)"
    return None


def _attn_dp_positive(a: Args, _: str) -> str | None:
    n = _int(a.get("attn_dp_size"))
    return f"--attn-dp-size must be positive (got {n})" if n is not None and n < 1 else None


def _attn_dp_and_dp(a: Args, _: str) -> str | None:
    n, dp = _int(a.get("attn_dp_size")) or 1, _int(a.get("dp_size")) or 1
    if n > 1 and dp > 1:
        return f"--dp-size {dp} with --attn-dp-size {n}: data-parallel replicas combined with attention DP are not supported"
    return None


def _attn_dp_divides_tp(a: Args, _: str) -> str | None:
    n, tp = _int(a.get("attn_dp_size")) or 1, _int(a.get("tp_size")) or 1
    return f"--attn-dp-size {n} does not divide --tp-size {tp}" if n > 1 and tp % n else None


def _fusion_backend(a: Args, arch: str) -> str | None:
    backend = a.get("flashinfer_allreduce_fusion_backend")
    if backend is None:
        return None
    multi = (_int(a.get("nnodes")) or 1) > 1
    if arch not in ("hopper", "blackwell"):
        return "FlashInfer allreduce fusion requires SM90 or SM10X NVIDIA GPUs"
    if backend == "cutedsl" and arch != "blackwell":
        return "FlashInfer allreduce fusion cutedsl backend requires a Blackwell system"
    if backend == "auto" and multi and arch != "blackwell":
        return "FlashInfer allreduce fusion does not support multi-node on non-Blackwell systems (--nnodes > 1)"
    if backend == "trtllm" and multi:
        return "FlashInfer allreduce fusion trtllm backend supports single-node only"
    if backend == "mnnvl" and multi and arch != "blackwell":
        return "FlashInfer allreduce fusion mnnvl backend requires a Blackwell system, or SM90 single-node"
    return None


def _mixed_chunk(a: Args, _: str) -> str | None:
    algo = a.get("speculative_algorithm")
    ok = ("EAGLE", "NEXTN", "EAGLE3", "DFLASH", "DSPARK")  # NEXTN is resolved to EAGLE
    if a.get("enable_mixed_chunk") is True and isinstance(algo, str) and algo.upper() not in ok:
        return f"--enable-mixed-chunk is not supported with --speculative-algorithm {algo}"
    return None


def _draft_window(a: Args, _: str) -> str | None:
    w = _int(a.get("speculative_draft_window_size"))
    return f"--speculative-draft-window-size must be positive, got {w}" if w is not None and w <= 0 else None


def _draft_sink(a: Args, _: str) -> str | None:
    s = _int(a.get("speculative_draft_sink_size"))
    if s is None:
        return None
    if s < 0:
        return f"--speculative-draft-sink-size must be non-negative, got {s}"
    if a.get("speculative_draft_window_size") is None:
        return "--speculative-draft-sink-size requires --speculative-draft-window-size"
    return None


def _dflash_draft(a: Args, _: str) -> str | None:
    if str(a.get("speculative_algorithm") or "").upper() == "DFLASH" and a.get("speculative_draft_model_path") is None:
        return "DFLASH speculative decoding requires --speculative-draft-model-path"
    return None


def _chunk_page(a: Args, _: str) -> str | None:
    c, p = _int(a.get("chunked_prefill_size")), _int(a.get("page_size"))
    if c is not None and p and c > 0 and a.get("disaggregation_mode") != "decode" and c % p:
        return f"--chunked-prefill-size {c} must be divisible by --page-size {p}"
    return None


def _compile_padding(a: Args, _: str) -> str | None:
    if a.get("disable_cuda_graph_padding") is True and a.get("enable_torch_compile") is True:
        return "--disable-cuda-graph-padding is incompatible with --enable-torch-compile"
    return None


def _gpu_ids(a: Args, _: str) -> str | None:
    base, step = _int(a.get("base_gpu_id")), _int(a.get("gpu_id_step"))
    if base is not None and base < 0:
        return "base_gpu_id must be non-negative"
    if step is not None and step < 1:
        return "gpu_id_step must be positive"
    return None


def _moe_dense_tp(a: Args, _: str) -> str | None:
    m, tp = _int(a.get("moe_dense_tp_size")), _int(a.get("tp_size")) or 1
    return f"--moe-dense-tp-size {m} must be 1 or --tp-size ({tp})" if m is not None and m not in (1, tp) else None


def _workers(a: Args, _: str) -> str | None:
    for dest, low in (("tokenizer_worker_num", 1), ("detokenizer_worker_num", 1)):
        n = _int(a.get(dest))
        if n is not None and n < low:
            return f"--{dest.replace('_', '-')} must be >= {low} (got {n})"
    return None


def _conservativeness(a: Args, _: str) -> str | None:
    try:
        v = float(str(a.get("schedule_conservativeness")))
    except ValueError:
        return None
    return f"--schedule-conservativeness must be >= 0 (got {v})" if v < 0 else None


def _ports(a: Args, _: str) -> str | None:
    for dest in ("port", "grpc_port", "nccl_port"):
        p = _int(a.get(dest))
        if p is not None and not 1 <= p <= 65535:
            return f"--{dest.replace('_', '-')} {p} is not a port (1-65535)"
    grpc, port = _int(a.get("grpc_port")), _int(a.get("port"))
    if grpc is not None and grpc == port and not a.get("grpc_mode") and not a.get("smg_grpc_mode"):
        return f"--grpc-port ({grpc}) must differ from --port ({port})"
    addr = a.get("dist_init_addr")
    if isinstance(addr, str) and addr.rpartition(":")[2].isdigit():
        p = int(addr.rpartition(":")[2])
        if not 1 <= p <= 65535:
            return f"--dist-init-addr port {p} is not a port (1-65535)"
    return None


RULES: tuple[Rule, ...] = (
    Rule("arg_groups/validation_hook.py:178-181", "tp x pp divisible by nnodes", _tp_divisible_by_nnodes, ("tp_size", "pp_size", "nnodes")),
    Rule("arg_groups/validation_hook.py:188-194", "cuda-graph padding vs torch.compile", _compile_padding, ("disable_cuda_graph_padding", "enable_torch_compile")),
    Rule("arg_groups/validation_hook.py:199-202", "no multi-node --dp-size", _no_multinode_dp, ("dp_size", "nnodes")),
    Rule("arg_groups/validation_hook.py:204-205", "GPU id base/step", _gpu_ids, ("base_gpu_id", "gpu_id_step")),
    Rule("arg_groups/validation_hook.py:207-211", "moe dense tp size", _moe_dense_tp, ("moe_dense_tp_size",)),
    Rule("arg_groups/validation_hook.py:213-219", "served model name without ':'", _served_name, ("served_model_name",), True),
    Rule("arg_groups/validation_hook.py:224-237", "mixed chunk vs speculative algorithm", _mixed_chunk, ("enable_mixed_chunk", "speculative_algorithm")),
    Rule("arg_groups/validation_hook.py:242-246", "chunked prefill divisible by page size", _chunk_page, ("chunked_prefill_size", "page_size")),
    Rule("arg_groups/validation_hook.py:273-274", "tokenizer/detokenizer workers >= 1", _workers, ("tokenizer_worker_num", "detokenizer_worker_num")),
    Rule("arg_groups/validation_hook.py:314", "schedule conservativeness >= 0", _conservativeness, ("schedule_conservativeness",)),
    Rule("arg_groups/validation_hook.py:357-362 + arg_groups/serving_hook.py:381-386", "port ranges, grpc port",
         _ports, ("port", "grpc_port", "nccl_port", "dist_init_addr"), True),
    Rule("arg_groups/parallel_hook.py:285-286", "--attn-dp-size >= 1", _attn_dp_positive, ("attn_dp_size",)),
    Rule("arg_groups/parallel_hook.py:287-292", "no --dp-size with attention DP", _attn_dp_and_dp, ("attn_dp_size", "dp_size")),
    Rule("arg_groups/parallel_hook.py:326", "--attn-dp-size divides --tp-size", _attn_dp_divides_tp, ("attn_dp_size", "tp_size")),
    Rule("arg_groups/speculative_hook.py:202-207", "draft window size > 0", _draft_window, ("speculative_draft_window_size",)),
    Rule("arg_groups/speculative_hook.py:220-231", "draft sink size >= 0, needs a window", _draft_sink, ("speculative_draft_sink_size", "speculative_draft_window_size")),
    Rule("arg_groups/speculative_hook.py:324-327", "DFLASH needs a draft model", _dflash_draft, ("speculative_algorithm", "speculative_draft_model_path")),
    Rule("layers/flashinfer_comm_fusion.py:46-84", "allreduce fusion backend vs GPU and nodes", _fusion_backend, ("flashinfer_allreduce_fusion_backend", "nnodes")),
)


def parse_values(argv: Sequence[str], table: OptionTable) -> dict[str, object]:
    """dest -> value: the table's defaults, then the argv (switches True, one value as str,
    several as a list). The argv must already pass ``check_argv``."""
    defaults = option_defaults()
    values: dict[str, object] = {o.dest: defaults.get(o.dest) for o in table.options}
    i = 0
    while i < len(argv):
        flag, eq, inline = argv[i].partition("=")
        i += 1
        spec = table.lookup(flag)
        if spec is None:
            continue
        if not spec.takes_value:
            values[spec.dest] = True
            continue
        got = [inline] if eq else []
        while not eq and i < len(argv) and not argv[i].startswith("--"):
            got.append(argv[i])
            i += 1
        values[spec.dest] = got[0] if len(got) == 1 else got
    return values


@cache
def option_defaults() -> dict[str, object]:
    """dest -> default of the captured 0.5.23 ``add_cli_args`` table."""
    data = resources.files("glm5cluster.sglang").joinpath("data/server-options-0.5.23.json")
    return {str(o["dest"]): o.get("default") for o in json.loads(data.read_text())["options"]}


def check_postparse(argv: Sequence[str], table: OptionTable, architecture: str,
                    family: str = "0.5.23") -> list[PostParseProblem]:
    """The problems SGLang 0.5.23's post-parse validation would raise for ``argv``."""
    values = parse_values(argv, table)
    out = []
    for rule in RULES:
        if family != "0.5.23" and not rule.version_neutral:
            continue
        problem = rule.check(values, architecture)
        if problem:
            out.append(PostParseProblem(f"{problem} (SGLang 0.5.23 refuses this: sglang/srt/{rule.source})",
                                        rule.dests))
    return out
