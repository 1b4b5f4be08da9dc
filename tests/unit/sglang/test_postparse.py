"""The post-parse rules mirrored from SGLang 0.5.23 (``sglang/postparse.py``): each refuses what
the real ``check_server_args`` / resolution hooks refuse, and the planner's argv passes them."""

from __future__ import annotations

import pytest

from glm5cluster.sglang import build_args, load_table
from glm5cluster.sglang.postparse import RULES, check_postparse, parse_values

BASE = ["--model-path", "/m", "--tp-size", "8"]
CASES = [  # (extra argv, GPU architecture, fragment of the expected problem)
    (["--nnodes", "3"], "hopper", "not divisible by nnodes"),
    (["--dp-size", "2", "--nnodes", "2"], "hopper", "multi-node data-parallel"),
    (["--served-model-name", "glm:5"], "hopper", "reserves for 'model:adapter'"),
    (["--attn-dp-size", "0"], "hopper", "must be positive"),
    (["--attn-dp-size", "2", "--dp-size", "2"], "hopper", "combined with attention DP"),
    (["--attn-dp-size", "3"], "hopper", "does not divide --tp-size 8"),
    (["--flashinfer-allreduce-fusion-backend", "auto", "--nnodes", "2"], "hopper", "multi-node on non-Blackwell"),
    (["--flashinfer-allreduce-fusion-backend", "trtllm", "--nnodes", "2"], "blackwell", "single-node only"),
    (["--flashinfer-allreduce-fusion-backend", "cutedsl"], "hopper", "requires a Blackwell"),
    (["--flashinfer-allreduce-fusion-backend", "auto"], "gfx942", "requires SM90 or SM10X"),
    (["--speculative-algorithm", "NGRAM", "--enable-mixed-chunk"], "hopper", "--enable-mixed-chunk is not supported"),
    (["--speculative-draft-window-size", "0"], "hopper", "must be positive"),
    (["--speculative-draft-sink-size", "4"], "hopper", "requires --speculative-draft-window-size"),
    (["--speculative-algorithm", "DFLASH"], "hopper", "requires --speculative-draft-model-path"),
    (["--chunked-prefill-size", "100", "--page-size", "64"], "hopper", "divisible by --page-size"),
    (["--disable-cuda-graph-padding", "--enable-torch-compile"], "hopper", "incompatible"),
    (["--base-gpu-id", "-1"], "hopper", "base_gpu_id must be non-negative"),
    (["--moe-dense-tp-size", "4"], "hopper", "must be 1 or --tp-size"),
    (["--tokenizer-worker-num", "0"], "hopper", "must be >= 1"),
    (["--schedule-conservativeness", "-1"], "hopper", "must be >= 0"),
    (["--port", "70000"], "hopper", "is not a port"),
    (["--grpc-port", "30000"], "hopper", "must differ from --port"),
]


@pytest.mark.parametrize(("extra", "arch", "fragment"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_rule_refuses(extra: list[str], arch: str, fragment: str) -> None:
    problems = check_postparse(BASE + extra, load_table(), arch)
    assert any(fragment in p.message for p in problems), [p.message for p in problems]
    assert all("(SGLang 0.5.23 refuses this: sglang/srt/" in p.message for p in problems)


def test_defaults_pass_and_values_parse() -> None:
    assert check_postparse(BASE, load_table(), "hopper") == []
    v = parse_values(BASE + ["--enable-metrics", "--served-model-name=x"], load_table())
    assert v["enable_metrics"] is True and v["served_model_name"] == "x" and v["tp_size"] == "8"
    assert v["port"] == 30000  # the captured add_cli_args default


def test_every_rule_names_its_source_line() -> None:
    for rule in RULES:
        assert rule.source.split(":")[0].endswith(".py") and any(ch.isdigit() for ch in rule.source), rule


def test_launch_era_runs_only_the_version_neutral_rules() -> None:
    argv = BASE + ["--dp-size", "2", "--nnodes", "2", "--served-model-name", "a:b"]
    msgs = [p.message for p in check_postparse(argv, load_table(), "hopper", family="launch-era")]
    assert len(msgs) == 1 and "model:adapter" in msgs[0]


@pytest.mark.parametrize("kind", ["H100", "H200", "B200", "MI300X", "MI325X", "MI355X"])
@pytest.mark.parametrize("hosts", [1, 2])
def test_the_planner_passes_its_own_rules(inv_factory, planner, kind: str, hosts: int) -> None:
    repo = "zai-org/GLM-5" if kind.startswith("MI") else "zai-org/GLM-5-FP8"
    for dp in (False, True):
        inv = inv_factory(kind, repo, hosts=hosts * (2 if kind == "H100" else 1),
                          count=4 if hosts == 2 and kind in ("H200", "B200") else 8,
                          serving={"features": {"dp_attention": dp}})
        topo = planner(inv)
        for rep in topo.replicas:
            for rank in rep.ranks:
                argv = build_args(inv, topo, rep, rank)
                assert check_postparse(argv, load_table(), rep.deployment.gpu.architecture) == [], argv
