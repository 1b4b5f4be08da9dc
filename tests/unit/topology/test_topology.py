"""The planner, table-driven over every hardware x precision row of the seed table."""

from __future__ import annotations

import pytest

from glm5cluster.errors import PlanError
from glm5cluster.model.catalog import CATALOG, deployment
from glm5cluster.model.inventory import GpuKind, Precision
from glm5cluster.topology import host_port

# (kind, repo, tp, nodes of 8) straight from reference section 1
ROWS = [
    ("H100", "zai-org/GLM-5-FP8", 16, 2),
    ("H100", "zai-org/GLM-5", 32, 4),
    ("H200", "zai-org/GLM-5-FP8", 8, 1),
    ("H200", "zai-org/GLM-5", 16, 2),
    ("B200", "zai-org/GLM-5-FP8", 8, 1),
    ("B200", "zai-org/GLM-5", 16, 2),
    ("MI300X", "zai-org/GLM-5", 8, 1),
    ("MI325X", "zai-org/GLM-5", 8, 1),
    ("MI355X", "zai-org/GLM-5", 8, 1),
]


@pytest.mark.parametrize(("kind", "repo", "tp", "nnodes"), ROWS)
def test_every_seed_row(inv_factory, planner, kind, repo, tp, nnodes):
    topo = planner(inv_factory(kind, repo, hosts=nnodes))
    assert len(topo.replicas) == 1 and not topo.warnings and not topo.leftover
    rep = topo.replicas[0]
    assert (rep.tp_size, rep.nnodes) == (tp, nnodes)
    assert [r.node.name for r in rep.ranks] == [f"n{i}" for i in range(nnodes)]
    assert [r.node_rank for r in rep.ranks] == list(range(nnodes))
    assert [r.is_head for r in rep.ranks] == [True] + [False] * (nnodes - 1)
    assert rep.dist_init_addr == "192.168.0.1:20000"  # head's cluster address
    assert rep.endpoint == "http://10.0.0.1:30000"  # head's SSH address
    assert "cluster address" in topo.rationale and "SSH address" in topo.rationale


def test_catalog_rows():
    frac = {GpuKind.H100: 0.85, GpuKind.H200: 0.85, GpuKind.B200: 0.9, GpuKind.MI300X: 0.80,
            GpuKind.MI325X: 0.80, GpuKind.MI355X: 0.80}
    for kind, value in frac.items():
        assert CATALOG[kind].mem_fraction_static == value
    assert not CATALOG[GpuKind.MI300X].eagle_supported and CATALOG[GpuKind.H100].eagle_supported
    assert CATALOG[GpuKind.B200].open_kernel_modules_required
    assert not CATALOG[GpuKind.H200].open_kernel_modules_required
    assert CATALOG[GpuKind.H100].nvswitch_fabric_manager and not CATALOG[GpuKind.MI355X].nvswitch_fabric_manager
    b = deployment(GpuKind.B200, Precision.FP8).backends
    assert (b.quantization, b.dsa_decode_backend, b.moe_runner_backend, b.expert_parallel_size) == (
        "fp8", "trtllm", "flashinfer_trtllm", 1)
    a = deployment(GpuKind.MI355X, Precision.BF16).backends
    assert (a.chunked_prefill_size, a.watchdog_timeout, a.trust_remote_code) == (131072, 1200, True)


@pytest.mark.parametrize("kind", ["MI300X", "MI325X", "MI355X"])
def test_fp8_on_amd_is_refused(inv_factory, planner, kind):
    with pytest.raises(PlanError) as e:
        planner(inv_factory(kind, "zai-org/GLM-5-FP8"))
    assert "FP8 not verified on AMD" in e.value.message
    assert e.value.path == "model.repo" and "zai-org/GLM-5" in (e.value.hint or "")


def test_ipv6_dist_init_in_brackets(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=2)
    data = inv.model_dump(mode="json")
    data["hosts"][0]["cluster_address"] = "fd00::1"
    data["hosts"][0]["address"] = "2001:db8::1"
    topo = planner(type(inv).model_validate(data))
    assert topo.replicas[0].dist_init_addr == "[fd00::1]:20000"
    assert topo.replicas[0].endpoint == "http://[2001:db8::1]:30000"
    assert host_port("10.0.0.1", 1) == "10.0.0.1:1"


def test_rank_one_of_h200_bf16(inv_factory, planner):
    topo = planner(inv_factory("H200", "zai-org/GLM-5", hosts=2))
    r1 = topo.replicas[0].ranks[1]
    assert (r1.node.name, r1.node_rank, r1.is_head) == ("n1", 1, False)


def test_several_replicas_in_inventory_order(inv_factory, planner):
    topo = planner(inv_factory("H200", "zai-org/GLM-5", hosts=4))
    assert [[r.node.name for r in rep.ranks] for rep in topo.replicas] == [["n0", "n1"], ["n2", "n3"]]
    assert topo.replicas[1].dist_init_addr == "192.168.0.3:20000"


# ---- every error path ------------------------------------------------------------------------
def _err(planner, inv) -> PlanError:
    with pytest.raises(PlanError) as e:
        planner(inv)
    assert not e.value.warning
    return e.value


def test_too_few_hosts(inv_factory, planner):
    e = _err(planner, inv_factory("H100", "zai-org/GLM-5", hosts=3))
    assert e.path == "hosts" and "too few hosts" in e.message and "4 hosts" in e.message


def test_explicit_replicas_more_than_hosts_allow(inv_factory, planner):
    e = _err(planner, inv_factory("H200", "zai-org/GLM-5", hosts=3, replicas={"count": 2}))
    assert e.path == "replicas.count"


def test_mixed_gpu_kinds_in_a_replica(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=2)
    data = inv.model_dump(mode="json")
    data["hosts"][1]["gpu"] = {"kind": "H100", "count": 8}
    e = _err(planner, type(inv).model_validate(data))
    assert e.path == "hosts[1].gpu.kind"


def test_mixed_gpu_counts_in_a_replica(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=3, count=8)
    data = inv.model_dump(mode="json")
    data["hosts"][0]["gpu"] = {"kind": "H200", "count": 4}  # head: 4 GPUs -> 4 hosts needed
    data["hosts"].append({"name": "n3", "address": "10.0.0.4"})
    e = _err(planner, type(inv).model_validate(data))
    assert e.path == "cluster.gpu.count" and "same GPU count" in e.message


def test_gpu_count_not_dividing_tp(inv_factory, planner):
    e = _err(planner, inv_factory("H200", "zai-org/GLM-5-FP8", hosts=1, count=6))
    assert e.path == "cluster.gpu.count" and "does not divide" in e.message
    inv = inv_factory("H200", "zai-org/GLM-5-FP8", hosts=1)
    data = inv.model_dump(mode="json")
    data["hosts"][0]["gpu"] = {"kind": "H200", "count": 3}
    assert _err(planner, type(inv).model_validate(data)).path == "hosts[0].gpu.count"


def test_leftover_hosts_warn_when_count_is_implicit(inv_factory, planner):
    topo = planner(inv_factory("H200", "zai-org/GLM-5", hosts=3))
    assert len(topo.replicas) == 1 and [n.name for n in topo.leftover] == ["n2"]
    (w,) = topo.warnings
    assert w.warning and w.path == "hosts[2]" and "n2" in w.message


def test_leftover_hosts_are_an_error_when_count_is_explicit(inv_factory, planner):
    e = _err(planner, inv_factory("H200", "zai-org/GLM-5-FP8", hosts=2, replicas={"count": 1}))
    assert e.path == "replicas.count" and "n1" in e.message


def test_router_host_is_used_last_and_serves_when_the_hosts_allow(inv_factory, planner):
    # One rule with or without replicas.count: the router host comes last and serves like any
    # other host; the router runs beside it (no warning, nothing left idle).
    inv = inv_factory("H200", "zai-org/GLM-5-FP8", hosts=3, replicas={"router": {"host": "n0"}})
    topo = planner(inv)
    assert [rep.head.node.name for rep in topo.replicas] == ["n1", "n2", "n0"]
    assert topo.router is not None and topo.router.node.name == "n0" and not topo.warnings
    assert topo.router.worker_urls == ("http://10.0.0.2:30000", "http://10.0.0.3:30000", "http://10.0.0.1:30000")


def test_four_hosts_tp16_with_a_router_make_two_replicas_and_leave_none_idle(inv_factory, planner):
    # Before: the router host was kept out without a count, so 3 hosts made one tp16 replica
    # and one host sat idle.
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=4, replicas={"router": {"host": "n0"}})
    topo = planner(inv)
    assert [[r.node.name for r in rep.ranks] for rep in topo.replicas] == [["n1", "n2"], ["n3", "n0"]]
    assert not topo.leftover and not topo.warnings


def test_router_host_not_needed_by_an_explicit_count_is_the_routers_own(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5-FP8", hosts=3, replicas={"count": 2, "router": {"host": "n0"}})
    topo = planner(inv)
    assert [rep.head.node.name for rep in topo.replicas] == ["n1", "n2"]
    assert not topo.leftover and not topo.warnings


def test_router_host_also_serving_is_normal(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5-FP8", hosts=2,
                      replicas={"count": 2, "router": {"host": "n0"}})
    topo = planner(inv)
    assert not topo.warnings and topo.replicas[1].head.node.name == "n0"


def test_router_on_a_replica_heads_dist_init_port_is_refused(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5-FP8", hosts=1,
                      replicas={"count": 1, "router": {"host": "n0", "port": 20000}})
    e = _err(planner, inv)
    assert e.path == "replicas.router.port" and "dist-init" in e.message


def test_router_port_clash_on_serving_host(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5-FP8", hosts=1,
                      replicas={"count": 1, "router": {"host": "n0", "port": 30000}})
    assert _err(planner, inv).path == "replicas.router.port"


def test_unknown_router_host(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5-FP8", replicas={"router": {"host": "nope"}})
    assert _err(planner, inv).path == "replicas.router.host"


@pytest.mark.parametrize("field", ["name", "address", "cluster_address"])
def test_duplicates(inv_factory, planner, field):
    inv = inv_factory("H200", "zai-org/GLM-5-FP8", hosts=2)
    data = inv.model_dump(mode="json")
    data["hosts"][1][field] = data["hosts"][0][field]
    assert _err(planner, type(inv).model_validate(data)).path == f"hosts[1].{field}"


def test_port_clash(inv_factory, planner):
    inv = inv_factory(serving={"http_port": 20000})
    assert _err(planner, inv).path == "serving.dist_init_port"
    inv = inv_factory(serving={"http_port": 20003, "features": {"dp_attention": True}})
    assert _err(planner, inv).path == "serving.dist_init_port"


def test_eagle_forced_on_amd(inv_factory, planner):
    inv = inv_factory("MI300X", "zai-org/GLM-5", serving={"features": {"speculative_decoding": True}})
    assert _err(planner, inv).path == "serving.features.speculative_decoding"


def test_index_cache_needs_fp8(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=2, serving={"features": {"index_cache": True}})
    assert _err(planner, inv).path == "serving.features.index_cache"


def test_missing_interface_on_multinode_warns(inv_factory, planner):
    inv = inv_factory("H200", "zai-org/GLM-5", hosts=2)
    data = inv.model_dump(mode="json")
    data["cluster"]["interface"] = None
    topo = planner(type(inv).model_validate(data))
    assert {w.path for w in topo.warnings} == {"hosts[0].interface", "hosts[1].interface"}


def test_explicit_count_beyond_the_hosts(inv_factory, planner):
    e = _err(planner, inv_factory("H200", "zai-org/GLM-5-FP8", hosts=1, replicas={"count": 3}))
    assert e.path == "replicas.count" and "too few hosts" in e.message
