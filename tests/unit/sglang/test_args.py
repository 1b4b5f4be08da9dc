"""build_args: head/rank split, features, version spellings, extra_args."""

from __future__ import annotations

import pytest

from glm5cluster.errors import PlanError
from glm5cluster.sglang import build_args, load_table, table_for, validate_argv


def args_of(planner, inv, replica=0, rank=0):
    topo = planner(inv)
    rep = topo.replicas[replica]
    return build_args(inv, topo, rep, rep.ranks[rank])


def without_node_rank(argv: list[str]) -> list[str]:
    i = argv.index("--node-rank")
    return argv[:i] + argv[i + 2:]


def test_every_rank_gets_the_same_argv_but_node_rank(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=2)
    a = args_of(planner, inv, rank=1)
    joined = " ".join(a)
    assert "--tp-size 16 --nnodes 2 --node-rank 1 --dist-init-addr 192.168.0.1:20000" in joined
    head = args_of(planner, inv, rank=0)
    assert without_node_rank(a) == without_node_rank(head)
    assert {"--served-model-name", "--tool-call-parser", "--enable-metrics", "--reasoning-parser"} <= set(a)
    assert a[a.index("--served-model-name") + 1] == "zai-org/GLM-5"
    assert "--api-key" not in a
    assert validate_argv(a, load_table()) == [] and validate_argv(head, load_table()) == []


def test_listens_on_ipv6_any_when_the_endpoint_is_ipv6(inv_factory, planner):
    v4 = args_of(planner, inv_factory())
    assert v4[v4.index("--host") + 1] == "0.0.0.0"
    inv = inv_factory(hosts=2, kind="H100")
    data = inv.model_dump(mode="json", exclude_defaults=True)
    for i, h in enumerate(data["hosts"]):
        h["address"] = f"2001:db8::{i + 1}"
    inv6 = type(inv).model_validate(data)
    for rank in (0, 1):
        a = args_of(planner, inv6, rank=rank)
        assert a[a.index("--host") + 1] == "::"


def test_h200_fp8_over_two_hosts_drops_allreduce_fusion(inv_factory, planner):
    one = args_of(planner, inv_factory("H200"))
    assert "--flashinfer-allreduce-fusion-backend" in one  # single node: the cookbook's setting
    for rank in (0, 1):
        two = args_of(planner, inv_factory("H200", hosts=2, count=4), rank=rank)
        assert "--nnodes" in two and "--flashinfer-allreduce-fusion-backend" not in two
    old = args_of(planner, inv_factory("H200", hosts=2, count=4, serving={"sglang_version": "0.5.10"}))
    assert "--enable-flashinfer-allreduce-fusion" not in old
    topo = planner(inv_factory("H200", hosts=2, count=4))
    assert "allreduce fusion" in topo.rationale and "multi-node" in topo.rationale
    # Blackwell keeps it across nodes (0.5.23 resolves auto to mnnvl on SM100)
    b200 = args_of(planner, inv_factory("B200", hosts=2, count=4))
    assert b200[b200.index("--flashinfer-allreduce-fusion-backend") + 1] == "auto"


def test_extra_args_may_not_silently_replace_cookbook_flags(inv_factory, planner):
    for extra in (["--mem-fraction-static", "0.8"], ["--speculative-algorithm", "NEXTN"],
                  ["--reasoning-parser", "deepseek-r1"]):
        with pytest.raises(PlanError) as e:
            args_of(planner, inv_factory(serving={"extra_args": extra}))
        assert "override_flags" in str(e.value) and e.value.path == "serving.extra_args", extra
    inv = inv_factory(serving={"extra_args": ["--mem-fraction-static", "0.8"],
                               "override_flags": ["--mem-fraction-static"]})
    a = args_of(planner, inv)
    assert a.count("--mem-fraction-static") == 1 and a[a.index("--mem-fraction-static") + 1] == "0.8"
    from glm5cluster.sglang.args import overrides
    topo = planner(inv)
    [ov] = overrides(inv, topo.replicas[0])
    assert (ov.flag, ov.cookbook, ov.extra) == ("--mem-fraction-static", ("0.85",), ("0.8",))
    # a flag the cookbook does not set on this hardware needs no override
    assert "--quantization" in args_of(planner, inv_factory(serving={"extra_args": ["--quantization", "fp8"]}))


def test_override_flags_cannot_name_planner_flags(inv_factory, planner):
    with pytest.raises(PlanError) as e:
        args_of(planner, inv_factory(serving={"extra_args": ["--tp-size", "4"], "override_flags": ["--tp-size"]}))
    assert "planner" in str(e.value)


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
