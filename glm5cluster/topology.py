"""The pure topology planner: replicas, node ranks (head first), dist-init address, endpoint.

Cluster shape is computed here once (architecture rule 9); templates and tasks only read it.
Hosts are taken in inventory order, the router host last: it serves a replica like any other
host when the replicas need it (the router is one light process beside SGLang; its port must
then differ from SGLang's), and when no replica needs it, it is the router's own host (not a
left-over). Problems are raised as ``PlanError`` with the inventory field path; the ones that
do not stop a run (hosts left over) are collected in ``Topology.warnings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from glm5cluster.errors import PlanError
from glm5cluster.model.catalog import Deployment, allreduce_fusion_multi_node_ok, deployment
from glm5cluster.model.inventory import GpuKind, Inventory, Precision
from glm5cluster.model.nodes import Node

DP_ATTENTION_ZMQ_PORTS = 6  # with DP attention, ZMQ also listens on dist-init port + 1 .. + 6


def host_port(address: str, port: int) -> str:
    """``addr:port``, with IPv6 literals in brackets (``[fd00::1]:20000``)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass(frozen=True)
class RankAssignment:
    node: Node
    node_rank: int
    is_head: bool
    host_index: int  # position in the inventory's ``hosts`` list


@dataclass(frozen=True)
class Replica:
    index: int
    tp_size: int
    nnodes: int
    dist_init_addr: str  # head cluster address : dist-init port
    endpoint: str  # http://<head SSH address>:<http port>
    ranks: tuple[RankAssignment, ...]  # head first
    deployment: Deployment

    @property
    def head(self) -> RankAssignment:
        return self.ranks[0]

    @property
    def gpu_kind(self) -> GpuKind:
        return self.deployment.gpu.kind


@dataclass(frozen=True)
class RouterPlan:
    node: Node
    host_index: int
    port: int
    policy: str
    url: str
    worker_urls: tuple[str, ...]


@dataclass(frozen=True)
class Topology:
    cluster: str
    precision: Precision
    replicas: tuple[Replica, ...]
    router: RouterPlan | None
    leftover: tuple[Node, ...]
    warnings: tuple[PlanError, ...]
    rationale: str

    def replica_of(self, node_name: str) -> tuple[Replica, RankAssignment] | None:
        for rep in self.replicas:
            for rank in rep.ranks:
                if rank.node.name == node_name:
                    return rep, rank
        return None


def _gpu_path(inv: Inventory, index: int, leaf: str) -> str:
    return f"hosts[{index}].gpu.{leaf}" if inv.hosts[index].gpu is not None else f"cluster.gpu.{leaf}"


def _check_unique(inv: Inventory, nodes: Sequence[Node]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for i, n in enumerate(nodes):
        for field, value in (("name", n.name), ("address", n.ssh.address),
                             ("cluster_address", n.cluster_address)):
            key = ("addr" if field != "name" else "name", value.lower())
            if key in seen and seen[key] != i:
                raise PlanError(
                    f"host {n.name}: {field} {value} is already used by host {nodes[seen[key]].name}",
                    hint="every host needs its own name, SSH address and cluster address",
                    path=f"hosts[{i}].{field}",
                )
            seen.setdefault(key, i)


def _check_ports(inv: Inventory, dp_attention: bool) -> None:
    s = inv.serving
    span = DP_ATTENTION_ZMQ_PORTS if dp_attention else 0
    dist = range(s.dist_init_port, s.dist_init_port + span + 1)
    if s.http_port in dist:
        raise PlanError(
            f"serving.http_port {s.http_port} clashes with the dist-init ports "
            f"{dist.start}-{dist.stop - 1} used on each replica head",
            hint="pick different ports (defaults: http 30000, dist-init 20000)",
            path="serving.dist_init_port",
        )


def _check_features(inv: Inventory, dep: Deployment) -> None:
    f = inv.serving.features
    kind = dep.gpu.kind.value
    if f.speculative_decoding and not dep.eagle_supported:
        raise PlanError(
            f"EAGLE speculative decoding is not supported on AMD for GLM-5 ({kind})",
            hint="remove serving.features.speculative_decoding (the cookbook leaves it off on AMD)",
            path="serving.features.speculative_decoding",
        )
    if f.index_cache and not dep.index_cache_supported:
        raise PlanError(
            "IndexCache is only available for zai-org/GLM-5-FP8",
            hint="set serving.features.index_cache: false, or serve zai-org/GLM-5-FP8",
            path="serving.features.index_cache",
        )


def _candidates(inv: Inventory, nodes: Sequence[Node]) -> tuple[list[int], int | None]:
    """Host indexes in assignment order (router host last), and the router's index."""
    order = list(range(len(nodes)))
    router = inv.replicas.router
    if router is None:
        return order, None
    by_name = {n.name: i for i, n in enumerate(nodes)}
    if router.host not in by_name:
        raise PlanError(
            f"router host {router.host} is not one of the inventory's hosts",
            hint="name a host listed under hosts",
            path="replicas.router.host",
        )
    r = by_name[router.host]
    # One rule, count or not: the router host is used last, and serves when a replica needs it.
    return [i for i in order if i != r] + [r], r


def plan_topology(inventory: Inventory, nodes: Sequence[Node]) -> Topology:
    """Assign hosts to tensor-parallel replicas; raise PlanError on the first blocking problem."""
    inv = inventory
    if len(nodes) != len(inv.hosts):
        raise ValueError("nodes must be resolve_nodes(inventory), one per host, in order")
    precision = inv.model.effective_precision
    _check_unique(inv, nodes)
    _check_ports(inv, inv.serving.features.dp_attention)
    order, router_index = _candidates(inv, nodes)
    explicit = inv.replicas.count
    warnings: list[PlanError] = []
    replicas: list[Replica] = []
    pos = 0
    while pos < len(order) if explicit is None else len(replicas) < explicit:
        if pos >= len(order) and explicit is not None:
            need = replicas[-1].nnodes if replicas else 1
            raise PlanError(
                f"too few hosts: replicas.count is {explicit} but {len(order)} host(s) make only "
                f"{len(replicas)} replica(s) of {need} host(s) each",
                hint=f"add {(explicit - len(replicas)) * need} host(s), or lower replicas.count",
                path="replicas.count",
            )
        head_i = order[pos]
        head = nodes[head_i]
        dep = deployment(head.gpu_kind, precision)
        _check_features(inv, dep)
        tp = dep.tp_size
        if tp % head.gpu_count:
            raise PlanError(
                f"host {head.name} has {head.gpu_count} GPUs, which does not divide tp={tp} "
                f"({head.gpu_kind.value} {precision.value})",
                hint=f"tp={tp} needs hosts whose GPU count divides {tp} (e.g. 8 GPUs per host)",
                path=_gpu_path(inv, head_i, "count"),
            )
        need = tp // head.gpu_count
        group = order[pos:pos + need]
        if len(group) < need:
            if replicas and explicit is None:
                break  # the rest are left over
            have = len(order) - pos
            what = f"replica {len(replicas)}" if replicas else "one replica"
            raise PlanError(
                f"too few hosts: {what} of {head.gpu_kind.value} {precision.value} needs tp={tp}, "
                f"i.e. {need} hosts of {head.gpu_count} GPUs, but only {have} remain",
                hint=f"add hosts, or lower replicas.count (each replica takes {need} hosts)",
                path="replicas.count" if explicit is not None else "hosts",
            )
        for i in group[1:]:
            n = nodes[i]
            if n.gpu_kind != head.gpu_kind:
                raise PlanError(
                    f"host {n.name} has {n.gpu_kind.value} GPUs but its replica's head "
                    f"{head.name} has {head.gpu_kind.value}: one replica needs one GPU kind",
                    hint="order hosts so each replica's hosts share a GPU kind",
                    path=_gpu_path(inv, i, "kind"),
                )
            if n.gpu_count != head.gpu_count:
                raise PlanError(
                    f"host {n.name} has {n.gpu_count} GPUs but its replica's head {head.name} "
                    f"has {head.gpu_count}: one replica needs the same GPU count on every host",
                    hint="give every host of a replica the same gpu.count",
                    path=_gpu_path(inv, i, "count"),
                )
        ranks = tuple(RankAssignment(nodes[i], r, r == 0, i) for r, i in enumerate(group))
        if need > 1:
            for i in group:
                if nodes[i].interface is None:
                    warnings.append(PlanError(
                        f"host {nodes[i].name} has no interface: NCCL/Gloo will guess the NIC, "
                        "the most common multi-node failure",
                        hint="set hosts[].interface or cluster.interface to the cluster-network NIC",
                        path=f"hosts[{i}].interface", warning=True))
        replicas.append(Replica(
            index=len(replicas),
            tp_size=tp,
            nnodes=need,
            dist_init_addr=host_port(head.cluster_address, inv.serving.dist_init_port),
            endpoint=f"http://{host_port(head.ssh.address, inv.serving.http_port)}",
            ranks=ranks,
            deployment=dep,
        ))
        pos += need
    used = {r.host_index for rep in replicas for r in rep.ranks}
    leftover_idx = [i for i in order if i not in used and i != router_index]
    if leftover_idx:
        names = ", ".join(nodes[i].name for i in leftover_idx)
        err = PlanError(
            f"{len(leftover_idx)} host(s) fit no replica and stay idle: {names}",
            hint="add hosts to complete another replica, or remove these from the inventory",
            path=f"hosts[{leftover_idx[0]}]" if explicit is None else "replicas.count",
            warning=explicit is None,
        )
        if explicit is not None:
            raise err
        warnings.append(err)
    router_plan = _router(inv, nodes, router_index, replicas, used, warnings)
    topo = Topology(
        cluster=inv.cluster.name,
        precision=precision,
        replicas=tuple(replicas),
        router=router_plan,
        leftover=tuple(nodes[i] for i in leftover_idx),
        warnings=tuple(warnings),
        rationale="",
    )
    return _with_rationale(inv, topo)


def _router(inv: Inventory, nodes: Sequence[Node], router_index: int | None, replicas: list[Replica],
            used: set[int], warnings: list[PlanError]) -> RouterPlan | None:
    spec = inv.replicas.router
    if spec is None or router_index is None:
        return None
    node = nodes[router_index]
    if router_index in used:
        s = inv.serving
        span = DP_ATTENTION_ZMQ_PORTS if s.features.dp_attention else 0
        if spec.port == s.http_port or s.dist_init_port <= spec.port <= s.dist_init_port + span:
            what = "API (serving.http_port)" if spec.port == s.http_port else "dist-init port"
            raise PlanError(
                f"router port {spec.port} is SGLang's {what} on {node.name}, which also serves a replica",
                hint="pick another replicas.router.port (default 8000)",
                path="replicas.router.port",
            )
    return RouterPlan(
        node=node,
        host_index=router_index,
        port=spec.port,
        policy=spec.policy,
        url=f"http://{host_port(node.ssh.address, spec.port)}",
        worker_urls=tuple(r.endpoint for r in replicas),
    )


def _with_rationale(inv: Inventory, topo: Topology) -> Topology:
    parts: list[str] = []
    for rep in topo.replicas:
        dep = rep.deployment
        hosts = ", ".join(f"{r.node.name} (rank {r.node_rank})" for r in rep.ranks)
        parts.append(
            f"Replica {rep.index}: {inv.model.repo} on {dep.gpu.kind.value} needs tp={rep.tp_size} "
            f"(cookbook, {dep.precision.value}); with {rep.head.node.gpu_count} GPUs per host that is "
            f"{rep.nnodes} host(s): {hosts}; ranks join at {rep.dist_init_addr} (the head's cluster "
            f"address) and clients use {rep.endpoint} (the head's SSH address; only rank 0 serves "
            f"the API)."
        )
        if dep.backends.allreduce_fusion and rep.nnodes > 1 and not allreduce_fusion_multi_node_ok(dep.gpu):
            parts.append(
                f"FlashInfer allreduce fusion (cookbook, {dep.gpu.kind.value} {dep.precision.value}) is left "
                f"off: it is single-node only on {dep.gpu.architecture} and this replica is multi-node "
                f"({rep.nnodes} hosts); SGLang 0.5.23 refuses `auto` across nodes except on Blackwell."
            )
    if topo.router is not None:
        parts.append(f"The router on {topo.router.node.name} ({topo.router.url}) spreads requests "
                     f"over {len(topo.replicas)} replica(s) with policy {topo.router.policy}.")
    if topo.leftover:
        parts.append("Left idle: " + ", ".join(n.name for n in topo.leftover) + ".")
    if inv.replicas.count is None:
        parts.append(f"{len(topo.replicas)} replica(s): as many as the hosts allow, in inventory order.")
    return replace(topo, rationale=" ".join(parts))
