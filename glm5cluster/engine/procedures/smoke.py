"""``smoke``: real requests against each replica's node 0 once it is ready.

Three chat completions through the SSH connection (the node-side program
``tasks/agents/smoke_test.py`` on the head, 127.0.0.1):
thinking mode (``reasoning_content`` present), instruct mode (``chat_template_kwargs:
{enable_thinking: false}`` -> no ``reasoning_content``), and a tool call (``tool_calls``
present). The API key, when the inventory names one, reaches the head on stdin only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from glm5cluster.commands import Secret, Shell
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.procedures.launch import api_key_of, selected_replicas
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.errors import TransportError
from glm5cluster.sglang.args import served_model_name
from glm5cluster.tasks import agents


class SmokeParams(Params):
    request_timeout: float = 120.0


def verdict(doc: Mapping[str, Mapping[str, object]]) -> list[str]:
    """Problems with the three answers (empty: all passed)."""
    problems = []
    for name in ("thinking", "instruct", "tool"):
        if doc.get(name, {}).get("error"):
            problems.append(f"{name} request failed: {doc[name]['error']}")
    if problems:
        return problems
    if not doc["thinking"].get("reasoning"):
        problems.append("thinking mode: no reasoning_content (is --reasoning-parser glm45 set?)")
    if doc["instruct"].get("reasoning"):
        problems.append("instruct mode (enable_thinking false) still returned reasoning_content")
    if not doc["instruct"].get("content"):
        problems.append("instruct mode: empty content")
    if not doc["tool"].get("tools"):
        problems.append("tool call: no tool_calls (is --tool-call-parser glm47 set?)")
    return problems


class Smoke:
    name = "smoke"
    Params = SmokeParams

    def run(self, params: SmokeParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        results: dict[str, StepResult] = {}
        if ctx.topology is None:
            return {h: StepResult(Status.FAILED, message="the inventory forms no topology") for h in ctx.hosts}
        inv = ctx.inventory
        model = served_model_name(inv)
        key, problem = api_key_of(inv, os.environ)
        replicas = selected_replicas(ctx, results)  # only groups whose every rank is still alive
        heads = {rep.head.node.name: rep for rep in replicas}
        for rep in replicas:
            for r in rep.ranks[1:]:
                results[r.node.name] = StepResult(Status.SKIPPED, f"rank {r.node_rank}: only node 0 serves requests")
        if ctx.check:
            results.update({h: StepResult(Status.SKIPPED, "check mode: no requests sent") for h in heads})
            return results
        if problem:
            results.update({h: StepResult(Status.FAILED, message=problem) for h in heads})
            return results

        def one(host: str) -> StepResult:
            rep = heads[host]
            stdin: str | Secret = Secret("api_key", key + "\n") if key else "\n"
            cmd = Shell.cmd(*agents.command("smoke_test", str(inv.serving.http_port), model,
                                            str(params.request_timeout)), stdin=stdin, timeout=params.request_timeout * 3 + 30,
                            description=f"smoke test replica {rep.index}")
            try:
                res = ctx.run(host, cmd)
            except TransportError as e:
                return StepResult(Status.UNREACHABLE, message=e.message, hint=e.hint)
            try:
                doc = json.loads(res.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                return StepResult(Status.FAILED, message=f"smoke test did not run (exit {res.exit_code})",
                                  tail=res.tail(5), hint="python3 is needed on the head")
            problems = verdict(doc)
            if problems:
                return StepResult(Status.FAILED, message=f"replica {rep.index}: " + "; ".join(problems),
                                  hint=f"glm5cluster logs INV --replica {rep.index}")
            secs = "/".join(str(doc[k].get("seconds")) for k in ("thinking", "instruct", "tool"))
            return StepResult(Status.OK, f"replica {rep.index} {rep.endpoint} model {model}: thinking "
                                         f"(reasoning_content), instruct, tool call ({doc['tool']['tools'][0]}) "
                                         f"passed in {secs}s")

        for h, hr in (ctx.fan_out(one, list(heads)) if heads else {}).items():
            results[h] = hr.value if hr.ok and hr.value else StepResult(Status.FAILED, message=str(hr.error))
        return results
