"""``preflight``: before anything is launched, prove the nodes can form their groups.

``checks`` picks what to check (up.yaml runs ``network``/``ports`` first, before any install,
and ``gpu``/``runtime``/``weights``/``limits`` right before the launch):

- network: the cluster interface exists, is up and carries the cluster address; every rank
  reaches its head's dist-init port over TCP (a short-lived listener on the head's cluster
  address, a connect with a timeout from every other rank);
- ports: the HTTP port (every rank) and the dist-init port(s) (head) are free, or held by this
  replica's own unit/container;
- gpu: driver usable, kind and count as planned, one driver version per replica;
- runtime: the pinned SGLang installed (venv) / the image present (docker), the same on every rank;
- weights: a verified manifest stamp on every rank, no file missing, one revision per replica;
- limits: /dev/shm and memlock (the unit or container raises memlock; docker brings its shm).
- fabric (``engine/procedures/preflight_net.py``): the interface routing to the head, host names,
  MTU, TCP both ways between every pair on the dist-init and a high port, argv parity, RDMA;
- nccl (``engine/procedures/preflight_nccl.py``): the NCCL all-reduce gate, on a replica none of
  whose ranks runs yet (a serving replica holds its GPUs: the gate is skipped there).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from glm5cluster.commands import Shell
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.procedures import preflight_nccl
from glm5cluster.engine.procedures.launch import per_replica, selected_replicas
from glm5cluster.engine.procedures.preflight_net import Fabric, fabric_facts
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.errors import TransportError
from glm5cluster.facts.amd import AmdGpus
from glm5cluster.facts.base import Fact
from glm5cluster.facts.batch import FactBatch
from glm5cluster.facts.network import InterfacesFact
from glm5cluster.facts.nvidia import NvidiaGpus
from glm5cluster.facts.nvidia_health import NvidiaFabricManager
from glm5cluster.facts.rdma import RdmaFact
from glm5cluster.facts.runtime_env import ComputeAppsFact, RuntimeEnvFact
from glm5cluster.facts.serving import PortHoldersFact, WeightsStampFact
from glm5cluster.facts.system import ShmFact
from glm5cluster.runtime import for_inventory
from glm5cluster.runtime.facts import InstalledFact, SurveyFact
from glm5cluster.tasks import agents
from glm5cluster.tasks import preflight as P
from glm5cluster.tasks import preflight_spec as S
from glm5cluster.tasks.node_fabric import RDMA_DEVICE
from glm5cluster.tasks.preflight_fabric import check_rdma
from glm5cluster.topology import DP_ATTENTION_ZMQ_PORTS, Replica

Check = Literal["network", "ports", "gpu", "runtime", "weights", "limits", "fabric", "spec", "nccl"]
ALL_CHECKS: tuple[Check, ...] = ("network", "ports", "gpu", "runtime", "weights", "limits")
EVERY_CHECK: tuple[Check, ...] = (*ALL_CHECKS, "fabric", "spec", "nccl")


class PreflightParams(Params):
    checks: list[Check] = Field(default_factory=lambda: list(ALL_CHECKS))
    connect_timeout: float = 3.0
    # the up playbook's gate step: honours preflight.nccl_gate and `up --skip-nccl`
    optional_gate: bool = False
    skip_nccl: bool = False


class Preflight:
    name = "preflight"
    Params = PreflightParams

    def run(self, params: PreflightParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        results: dict[str, StepResult] = {}
        if ctx.topology is None:
            return {h: StepResult(Status.FAILED, message="the inventory forms no topology") for h in ctx.hosts}
        replicas = selected_replicas(ctx, results)
        results.update(per_replica(ctx, replicas, "preflight", lambda rep: _Replica(params, ctx, rep).run()))
        return results


class _Replica:
    def __init__(self, params: PreflightParams, ctx: ClusterContext, rep: Replica) -> None:
        self.p, self.ctx, self.rep = params, ctx, rep
        self.inv = ctx.inventory
        self.runtime = for_inventory(self.inv)
        self.image = self.runtime.image(rep.deployment.gpu)
        self.hosts = [r.node.name for r in rep.ranks]
        self.head = self.hosts[0]
        self.problems: list[P.Problem] = []
        self.notes: dict[str, list[str]] = {h: [] for h in self.hosts}

    def facts_for(self, host: str) -> dict[str, Fact[Any]]:
        checks = set(self.p.checks)
        facts: dict[str, Fact[Any]] = {}
        if "network" in checks:
            facts["ifaces"] = InterfacesFact()
        if "ports" in checks or "network" in checks:
            facts["ports"] = PortHoldersFact(tuple(self.ports(host)))
            facts["ours"] = SurveyFact(self.inv.cluster.name)  # whose ports are the cluster's own
        if "nccl" in checks or "spec" in checks:  # a serving replica holds its GPUs
            facts["ours"] = SurveyFact(self.inv.cluster.name)
        if "gpu" in checks:
            facts["gpu"] = AmdGpus() if self.rep.deployment.gpu.vendor == "amd" else NvidiaGpus()
        if "runtime" in checks:
            facts["version"] = InstalledFact(self.runtime, self.image)
        if "weights" in checks:
            facts["stamp"] = WeightsStampFact(self.inv.model.weights_dir, agents.source("weights_stamp"))
        if "limits" in checks:
            facts["shm"] = ShmFact()
        if "fabric" in checks:
            facts.update(fabric_facts(self.rep.head.node.cluster_address))
        elif "nccl" in checks or "spec" in checks:  # GID index, NIC threshold, /dev/infiniband
            facts["rdma"] = RdmaFact()
        if "spec" in checks:
            code = ["-c", agents.source("runtime_env")]
            facts["renv"] = RuntimeEnvFact([*preflight_nccl.runtime_python(self.inv, self.rep), *code],
                                           [*preflight_nccl.runtime_python(self.inv, self.rep, devices=(RDMA_DEVICE,)),
                                            *code])
            if self.rep.deployment.gpu.vendor == "nvidia":
                facts["apps"] = ComputeAppsFact()
            if self.rep.deployment.gpu.nvswitch_fabric_manager and self.rep.head.node.gpu_count == 8:
                facts["fm"] = NvidiaFabricManager()
        return facts

    def ports(self, host: str) -> list[int]:
        s = self.inv.serving
        out = [s.http_port]
        if host == self.head and self.rep.nnodes > 1:
            span = DP_ATTENTION_ZMQ_PORTS if s.features.dp_attention else 0
            out += list(range(s.dist_init_port, s.dist_init_port + span + 1))
        return out

    def gather(self) -> tuple[dict[str, dict[str, Any]], dict[str, StepResult]]:
        def one(host: str) -> dict[str, Any]:
            wanted = self.facts_for(host)
            if not wanted:  # no check asked for anything on the node
                return {}
            batch = FactBatch(wanted)
            res = self.ctx.run(host, batch.command())
            return batch.parse(res)

        facts: dict[str, dict[str, Any]] = {}
        failed: dict[str, StepResult] = {}
        for h, hr in self.ctx.fan_out(one, self.hosts).items():
            if hr.ok and hr.value is not None:
                facts[h] = hr.value
            elif isinstance(hr.error, TransportError):
                failed[h] = StepResult(Status.UNREACHABLE, message=hr.error.message, hint=hr.error.hint)
            else:
                failed[h] = StepResult(Status.FAILED, message=f"could not gather preflight facts: {hr.error}")
        return facts, failed

    def run(self) -> dict[str, StepResult]:
        facts, failed = self.gather()
        if failed:
            return {h: failed.get(h) or StepResult(Status.FAILED, message=f"replica {self.rep.index}: "
                                                   f"{', '.join(failed)} could not be checked") for h in self.hosts}
        checks: set[str] = set(self.p.checks)
        nodes = {r.node.name: r.node for r in self.rep.ranks}
        for h in self.hosts:
            f = facts[h]
            if "network" in checks:
                self.problems += P.check_interface(h, nodes[h].cluster_address, nodes[h].interface, f["ifaces"])
            if "ports" in checks:
                self.problems += P.check_ports(h, self.ports(h), f["ports"], f["ours"])
                self.notes[h] += P.port_notes(self.ports(h), f["ports"], f["ours"])
            if "limits" in checks:
                probs, note = P.check_shm(h, self.runtime.host_shm, f["shm"].size_bytes if f["shm"].present else None,
                                          self.inv.serving.memlock_unlimited)
                self.problems += probs
                self.notes[h].append(note)
        gpu = self.rep.deployment.gpu
        if "gpu" in checks:
            self.problems += P.check_gpu_parity(self.hosts, {h: facts[h]["gpu"] for h in self.hosts},
                                                gpu.kind.value, self.rep.head.node.gpu_count)
        if "runtime" in checks:
            self.problems += P.check_runtime_parity(self.hosts, {h: facts[h]["version"] for h in self.hosts},
                                                    self.inv.serving.sglang_version, self.image)
        if "weights" in checks:
            m = self.inv.model
            self.problems += P.check_weights(self.hosts, {h: facts[h]["stamp"] for h in self.hosts}, m.repo,
                                             m.revision, m.pinned, m.weights_dir)
        if "network" in checks and self.rep.nnodes > 1 and not any(p.host == self.head for p in self.problems):
            self.tcp_test(facts)
        nics: dict[str, tuple[int, int]] = {}
        env: dict[str, dict[str, str]] = {}
        if "fabric" in checks:
            fab = Fabric(self.ctx, self.rep, self.p.connect_timeout)
            fab.check(facts)
            self.problems += fab.problems
            for h in self.hosts:
                self.notes[h] += fab.notes[h]
            nics, env = fab.nics, fab.env
        if "spec" in checks:
            self.spec(facts)
        if "nccl" in checks and self.p.optional_gate and (self.p.skip_nccl or not self.inv.preflight.nccl_gate):
            why = "--skip-nccl" if self.p.skip_nccl else "preflight.nccl_gate is false"
            self.notes[self.head].append(f"NCCL gate skipped ({why})")
        elif "nccl" in checks:
            self.nccl_gate(facts, nics, env)
        return self.results(checks)

    def spec(self, facts: dict[str, dict[str, Any]]) -> None:
        running = any(i.running for h in self.hosts for i in facts[h]["ours"].items)
        for h in self.hosts:
            f = facts[h]
            probs, note = S.check_runtime_env(h, f["renv"], self.runtime.limits_in_spec, self.inv.serving.memlock_unlimited,
                                              f["rdma"].dev_infiniband)
            self.problems += probs
            self.notes[h].append(note)
            if "fm" in f:
                probs, note = S.check_fabric_manager(h, f["fm"])
                self.problems += probs
                self.notes[h].append(note)
            if "apps" in f and not running:  # a serving replica's own processes hold the GPUs
                probs, note = S.check_gpus_idle(h, f["apps"])
                self.problems += probs
                self.notes[h].append(note)
        self.problems += S.check_version_parity(self.hosts, {h: facts[h]["renv"] for h in self.hosts})

    def nccl_gate(self, facts: dict[str, dict[str, Any]], nics: dict[str, tuple[int, int]],
                  env: dict[str, dict[str, str]]) -> None:
        busy = [h for h in self.hosts if any(i.running for i in facts[h]["ours"].items)]
        if busy:
            self.notes[self.head].append(f"NCCL gate skipped: the replica runs on {', '.join(busy)} "
                                         "(its GPUs are in use)")
            return
        if self.problems:
            self.notes[self.head].append("NCCL gate not run: fix the problems above first")
            return
        if not nics:
            for h in self.hosts:
                rd = check_rdma(h, facts[h]["rdma"], self.inv.serving.env)
                nics[h], env[h] = (rd.nics, rd.rate_gbit), rd.env
        verdict = preflight_nccl.run_gate(self.ctx, self.rep, env, nics)
        self.problems += verdict.problems
        self.notes[self.head].append("NCCL " + verdict.summary)

    def tcp_test(self, facts: dict[str, dict[str, Any]]) -> None:
        """Every other rank connects to the head's cluster address : dist-init port."""
        head_node = self.rep.head.node
        addr, port = head_node.cluster_address, self.inv.serving.dist_init_port
        ours = facts[self.head]["ours"]
        held = any(h.port == port for h in facts[self.head]["ports"])
        if held and not any(h.port == port and ours.owner_of(h.cgroup) for h in facts[self.head]["ports"]):
            return  # someone else holds it: check_ports already said so
        pid = ""
        if not held:  # our own server holds it when it runs: connect to it instead
            secs = self.p.connect_timeout * 2 + 10
            listen = shlex.join(agents.command("tcp_listen", addr, str(port), str(secs)))
            script = ("err=$(mktemp); "  # never a fixed, guessable /tmp name
                      f"setsid {listen} "
                      "</dev/null >/dev/null 2>\"$err\" & pid=$!; i=0; "
                      f"while [ $i -lt 30 ] && ! ss -Hltn \"sport = :{port}\" | grep -q .; do "
                      "kill -0 $pid 2>/dev/null || break; sleep 0.1; i=$((i+1)); done; "
                      f"if ss -Hltn \"sport = :{port}\" | grep -q .; then rm -f \"$err\"; echo \"pid=$pid\"; "
                      "else tail -n1 \"$err\"; rm -f \"$err\"; exit 1; fi")
            res = self.ctx.run(self.head, Shell.sh(script, timeout=30, description=f"listen on {addr}:{port}"))
            if not res.ok:
                self.problems.append(P.Problem(self.head, f"cannot listen on {addr}:{port}: {res.tail(1)}",
                                               "check hosts[].cluster_address belongs to this host"))
                return
            pid = res.stdout.strip().rpartition("pid=")[2]

        def connect(host: str) -> str:
            cmd = Shell.cmd(*agents.command("tcp_connect", addr, str(port), str(self.p.connect_timeout)),
                            timeout=self.p.connect_timeout + 20, description=f"connect to {addr}:{port}")
            return self.ctx.run(host, cmd).stdout.strip() or "error: no answer"

        try:
            for h, hr in self.ctx.fan_out(connect, self.hosts[1:]).items():
                out = hr.value if hr.ok and hr.value else f"error: {hr.error}"
                if out != "ok":
                    self.problems.append(P.Problem(
                        h, f"cannot reach the head {self.head} at {addr}:{port} (dist-init) over TCP: "
                        f"{out.removeprefix('error: ')}",
                        f"allow TCP from {h} to {self.head} port {port} (and all TCP between the nodes for "
                        f"NCCL/Gloo) on the cluster network; check firewalls and routes"))
        finally:
            if pid.isdigit():
                self.ctx.run(self.head, Shell.sh(f"kill {pid} 2>/dev/null; true", description="stop the listener"))

    def results(self, checks: set[str]) -> dict[str, StepResult]:
        out = {}
        done = ", ".join(c for c in EVERY_CHECK if c in checks)
        for h in self.hosts:
            mine = [p for p in self.problems if p.host == h]
            if mine:
                out[h] = StepResult(Status.FAILED, message=f"{h}: " + "; ".join(p.message for p in mine),
                                    hint="; ".join(dict.fromkeys(p.fix for p in mine)))
            else:
                notes = "; ".join(n for n in self.notes[h] if n)
                out[h] = StepResult(Status.OK, f"replica {self.rep.index} rank "
                                    f"{self.hosts.index(h)}: {done} ok" + (f" ({notes})" if notes else ""))
        return out
