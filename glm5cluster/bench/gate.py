"""Run, compare, keep, gate: the one path ``glm5cluster bench`` takes, and the hook a rollout
calls after bringing up a new group.

Rollout hook (call it once the new group's replicas serve)::

    from glm5cluster.bench.gate import QUICK, bench_and_gate
    outcome = bench_and_gate(inventory, topology, pool.get, api_key, QUICK.with_replicas((3,)))
    if not outcome.passed:  # regression beyond `bench.tolerance`, or a failed suite
        ...stop the rollout; outcome.comparisons says which metric, by how much...

``QUICK`` is a short latency run (10 prompts, 1000/1000 tokens, concurrency 1: about a minute
on real hardware); its baseline is the last good run of the same config digest, so the first
group of a new config passes with "no baseline" and later groups are held to it. The result
is kept in the history like any other run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from glm5cluster.bench.compare import SuiteComparison, Tolerance, compare, gate_passes
from glm5cluster.bench.history import History, utc_stamp
from glm5cluster.bench.records import BenchRun, Suite
from glm5cluster.bench.runner import BenchRequest, Progress, run_bench
from glm5cluster.bench.suites import SuiteParams
from glm5cluster.connect.base import Connection
from glm5cluster.model.inventory import Inventory
from glm5cluster.topology import Topology


@dataclass(frozen=True)
class QuickGate:
    request: BenchRequest

    def with_replicas(self, replicas: tuple[int, ...]) -> BenchRequest:
        return replace(self.request, replicas=replicas)


QUICK = QuickGate(BenchRequest(suites=(Suite.LATENCY,), params=SuiteParams(num_prompts=10, max_concurrency=1)))


@dataclass(frozen=True)
class Outcome:
    run: BenchRun
    comparisons: tuple[SuiteComparison, ...]
    passed: bool
    kept: Path | None


def tolerance_of(inv: Inventory) -> Tolerance:
    t = inv.bench.tolerance
    return Tolerance(accuracy_points=t.accuracy_points, throughput_pct=t.throughput_pct, tpot_pct=t.tpot_pct)


def bench_and_gate(inv: Inventory, topo: Topology, connect: Callable[[str], Connection], api_key: str | None,
                   req: BenchRequest, history: History | None = None, progress: Progress | None = None,
                   keep: bool = True, tolerance: Tolerance | None = None) -> Outcome:
    """Run ``req``, compare with the cookbook and the history, keep the run (atomically; a run
    interrupted before this point keeps nothing), and say whether it passes the gate."""
    store = history or History(inv.cluster.name)
    run = run_bench(inv, topo, connect, req, api_key, utc_stamp(), progress)
    comps = compare(run, store.load(), tolerance or tolerance_of(inv))
    passed = gate_passes(comps)
    run = replace(run, gate_passed=passed)
    kept = store.save(run) if keep else None
    return Outcome(run, comps, passed, kept)
