"""``sglang.flagcheck``: every rendered launch flag of every rank, parsed by the INSTALLED SGLang
(its own ``ServerArgs.add_cli_args``) on the replica's head, before any weight is loaded; then,
where it runs without a GPU or the model, the installed ``ServerArgs.check_server_args`` (its
assertions refuse the launch; see ``tasks.sglang_runtime.FLAGCHECK_SNIPPET``)."""

from __future__ import annotations

from collections.abc import Mapping

from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.model.catalog import GpuProfile
from glm5cluster.sglang.args import build_args
from glm5cluster.tasks.sglang_runtime import flagcheck_command, flagcheck_verdict


class FlagCheckParams(Params):
    pass


class FlagCheck:
    name = "sglang.flagcheck"
    Params = FlagCheckParams

    def run(self, params: FlagCheckParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        topo = ctx.topology
        if topo is None:
            return {h: StepResult(Status.SKIPPED, "no topology for this playbook") for h in ctx.hosts}
        results: dict[str, StepResult] = {}
        jobs: dict[str, list[list[str]]] = {}
        members: dict[str, list[str]] = {}
        gpus: dict[str, GpuProfile] = {}
        for rep in topo.replicas:
            head = rep.head.node.name
            jobs[head] = [build_args(ctx.inventory, topo, rep, rank) for rank in rep.ranks]
            members[head] = [r.node.name for r in rep.ranks]
            gpus[head] = rep.deployment.gpu
        heads = [h for h in jobs if h in ctx.hosts]

        def check(head: str) -> tuple[bool, str]:
            seen: set[tuple[str, ...]] = set()
            msg = ""
            for argv in jobs[head]:
                key = tuple(a for a in argv)
                if key in seen:
                    continue
                seen.add(key)
                if ctx.check:
                    return True, f"would check {len(jobs[head])} rank argv(s) with the installed parser"
                ok, msg, _ = flagcheck_verdict(ctx.run(head, flagcheck_command(ctx.inventory, gpus[head], argv)), head)
                if not ok:
                    return False, msg
            return True, msg

        got = ctx.fan_out(check, heads)
        for head, r in got.items():
            if not r.ok or r.value is None:
                res = StepResult(Status.UNREACHABLE if r.unreachable else Status.FAILED, message=str(r.error))
            elif r.value[0]:
                res = StepResult(Status.OK, r.value[1])
            else:
                res = StepResult(Status.FAILED, message=r.value[1],
                                 hint="fix serving.extra_args or serving.sglang_version; nothing was launched")
            for m in members[head]:
                if m in ctx.hosts:
                    results[m] = res if m == head or res.failed else StepResult(Status.OK, f"checked on head {head}")
        for h in ctx.hosts:
            results.setdefault(h, StepResult(Status.SKIPPED, "not in any replica"))
        return results
