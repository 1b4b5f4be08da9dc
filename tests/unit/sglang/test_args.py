"""build_args: head/rank split, features, version spellings, extra_args."""

from __future__ import annotations

import pytest

from glm5cluster.errors import PlanError
from glm5cluster.sglang import build_args, load_table, table_for, validate_argv

HEAD_ONLY = {"--served-model-name", "--tool-call-parser", "--enable-metrics", "--api-key"}


def args_of(planner, inv, replica=0, rank=0):
    topo = planner(inv)
    rep = topo.replicas[replica]
    return build_args(inv, topo, rep, rep.ranks[rank])


def test_rank_one_of_h200_bf16_gets_only_what_it_needs(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=2)
    a = args_of(planner, inv, rank=1)
    joined = " ".join(a)
    assert "--tp-size 16 --nnodes 2 --node-rank 1 --dist-init-addr 192.168.0.1:20000" in joined
    assert not HEAD_ONLY & set(a)
    assert "--model-path" in a and "--mem-fraction-static" in a and "--speculative-algorithm" in a
    head = args_of(planner, inv, rank=0)
    assert {"--served-model-name", "--tool-call-parser", "--enable-metrics"} <= set(head)
    assert head[head.index("--served-model-name") + 1] == "zai-org/GLM-5"
    assert validate_argv(a, load_table()) == [] and validate_argv(head, load_table()) == []


def test_single_node_has_no_multinode_flags(inv_factory, planner):
    a = args_of(planner, inv_factory("H200"))
    assert not {"--nnodes", "--node-rank", "--dist-init-addr"} & set(a)


def test_never_abbreviated_and_no_api_key(inv_factory, planner):
    inv = inv_factory("B200", serving={"secrets": {"api_key_env": "K"},
                                       "features": {"dp_attention": True, "index_cache": True}})
    a = args_of(planner, inv)
    flags = [x for x in a if x.startswith("--")]
    for f in flags:
        assert load_table().lookup(f) is not None and f not in ("--tp", "--model", "--ep", "--dp")
    assert "--api-key" not in a and "K" not in a


def test_amd_defaults_and_eagle(inv_factory, planner):
    a = args_of(planner, inv_factory("MI300X", "zai-org/GLM-5"))
    assert "--speculative-algorithm" not in a
    assert " ".join(a).count("tilelang") == 2
    nv = args_of(planner, inv_factory("H100", hosts=2, serving={"features": {"speculative_decoding": False}}))
    assert "--speculative-algorithm" not in nv


def test_parsers_can_be_turned_off(inv_factory, planner):
    inv = inv_factory(serving={"features": {"reasoning_parser": False, "tool_call_parser": False,
                                            "enable_metrics": False, "served_model_name": "glm-5-fp8"}})
    a = args_of(planner, inv)
    assert not {"--reasoning-parser", "--tool-call-parser", "--enable-metrics"} & set(a)
    assert a[a.index("--served-model-name") + 1] == "glm-5-fp8"


@pytest.mark.parametrize("version", ["0.5.9", "0.5.10", "0.5.12.post1"])
def test_launch_era_spellings(inv_factory, planner, version):
    b200 = args_of(planner, inv_factory("B200", serving={"sglang_version": version,
                                                          "features": {"dp_attention": True}}))
    s = " ".join(b200)
    assert "--attention-backend nsa" in s and "--nsa-decode-backend trtllm" in s
    assert "--nsa-prefill-backend trtllm" in s and "--enable-flashinfer-allreduce-fusion" in s
    assert "--dp-size 8 --enable-dp-attention" in s and "dsa" not in s and "--attn-dp-size" not in s
    assert validate_argv(b200, table_for(version)) == []  # the release's real table
    assert validate_argv(b200, load_table())  # 0.5.23 rejects the old names
    amd = args_of(planner, inv_factory("MI355X", "zai-org/GLM-5", serving={"sglang_version": version}))
    assert "--nsa-prefill-backend" in amd and validate_argv(amd, table_for(version)) == []


@pytest.mark.parametrize("version", ["0.5.8", "0.5.8.post1"])
def test_first_glm5_releases_lack_the_blackwell_trtllm_backend(inv_factory, planner, version):
    b200 = args_of(planner, inv_factory("B200", serving={"sglang_version": version}))
    assert any("invalid choice 'trtllm'" in e for e in validate_argv(b200, table_for(version)))
    amd = args_of(planner, inv_factory("MI355X", "zai-org/GLM-5", serving={"sglang_version": version}))
    assert validate_argv(amd, table_for(version)) == []


def test_extra_args_appended_and_validated(inv_factory, planner):
    inv = inv_factory(serving={"extra_args": ["--dist-timeout", "3600", "--enable-cache-report"]})
    assert args_of(planner, inv)[-3:] == ["--dist-timeout", "3600", "--enable-cache-report"]
    for bad, needle in [(["--tp", "8"], "abbreviations"), (["--dist-timeout"], "needs a value"),
                        (["--tp-size", "4"], "planner decides"), (["--api-key", "x"], "secret"),
                        (["--model", "/x"], "planner decides"), (["--bogus"], "unknown")]:
        with pytest.raises(PlanError) as e:
            args_of(planner, inv_factory(serving={"extra_args": bad}))
        assert e.value.path == "serving.extra_args" and needle in str(e.value), (bad, str(e.value))
