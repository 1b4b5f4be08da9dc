"""``launch``: every replica's TP group running its wanted config, started and stopped as one.

Per replica: read each rank's unit/container state, decide with ``tasks.launch.gang_plan``;
unchanged and running -> ok in one round trip; otherwise write the env file (0600), the
secrets file (0600, head only) and the unit, stop every rank (head first so it drains) and start
every rank again (head first). A rank is never restarted alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from glm5cluster.commands import CommandResult, Shell, Upload
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.errors import TransportError
from glm5cluster.facts.serving import RankState, parse_state, state_script
from glm5cluster.tasks.launch import (
    RankLaunch,
    cluster_dir,
    gang_plan,
    rank_launch,
    start_command,
    stop_command,
)
from glm5cluster.topology import Replica


class LaunchParams(Params):
    restart: bool = False  # restart every group even when unchanged (``up --restart``)


class StepFailed(Exception):
    def __init__(self, host: str, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.host, self.message, self.result = host, message, result


def api_key_of(inventory: object, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(key, problem): the API key from the controller's environment, when the inventory names one."""
    name = inventory.serving.secrets.api_key_env  # type: ignore[attr-defined]
    if not name:
        return None, None
    value = environ.get(name)
    if not value:
        return None, f"serving.secrets.api_key_env names {name}, which is not set in this shell"
    return value, None


def skip_unplaced(ctx: ClusterContext, results: dict[str, StepResult], why: str) -> None:
    for h in ctx.hosts:
        results.setdefault(h, StepResult(Status.SKIPPED, why))


def selected_replicas(ctx: ClusterContext, results: dict[str, StepResult]) -> list[Replica]:
    """Replicas whose ranks are all in the step's hosts; partly selected ones are skipped."""
    out = []
    for rep in ctx.topology.replicas:
        names = [r.node.name for r in rep.ranks]
        chosen = [h for h in names if h in ctx.hosts]
        if not chosen:
            continue
        if len(chosen) < len(names):
            left = ", ".join(h for h in names if h not in ctx.hosts)
            for h in chosen:
                results[h] = StepResult(Status.SKIPPED, f"replica {rep.index} is not fully selected "
                                        f"(missing {left}): a TP group is handled as a whole")
            continue
        out.append(rep)
    skip_unplaced(ctx, results, "not part of any replica")
    return out


def per_replica(ctx: ClusterContext, replicas: list[Replica], what: str,
                fn: Callable[[Replica], dict[str, StepResult]]) -> dict[str, StepResult]:
    """``fn`` for each replica in parallel; a replica whose ``fn`` raised fails on all its ranks."""
    out: dict[str, StepResult] = {}
    if not replicas:
        return out
    got = ctx.fan_out(lambda i: fn(replicas[int(i)]), [str(i) for i in range(len(replicas))], timeout=None)
    for i, hr in got.items():
        if hr.ok and hr.value is not None:
            out.update(hr.value)
        else:
            for r in replicas[int(i)].ranks:
                out[r.node.name] = StepResult(Status.FAILED, message=f"{what} failed: {hr.error}")
    return out


class Launch:
    name = "launch"
    Params = LaunchParams

    def run(self, params: LaunchParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        results: dict[str, StepResult] = {}
        if ctx.topology is None:
            return {h: StepResult(Status.FAILED, message="the inventory forms no topology",
                                  hint="run `glm5cluster plan INV` to see why") for h in ctx.hosts}
        key, problem = api_key_of(ctx.inventory, os.environ)
        replicas = selected_replicas(ctx, results)
        if problem:
            for rep in replicas:
                for r in rep.ranks:
                    results[r.node.name] = StepResult(Status.FAILED, message=problem,
                                                      hint="export the variable before running up")
            return results
        results.update(per_replica(ctx, replicas, "launch", lambda rep: self._replica(params, ctx, rep, key)))
        return results

    def _replica(self, params: LaunchParams, ctx: ClusterContext, rep: Replica,
                 key: str | None) -> dict[str, StepResult]:
        wanted = [rank_launch(ctx.inventory, ctx.topology, rep, r, key) for r in rep.ranks]
        hosts = [w.host for w in wanted]
        observed: dict[str, RankState] = {}
        out: dict[str, StepResult] = {}
        for w in wanted:
            try:
                res = ctx.run(w.host, Shell.sh(state_script(w.runtime.value, w.target, w.stamp_path), sudo=True,
                                               description=f"state of {w.target}"))
                observed[w.host] = parse_state(w.runtime.value, res.stdout)
            except TransportError as e:
                out[w.host] = StepResult(Status.UNREACHABLE, message=e.message, hint=e.hint)
        if out:
            for h in hosts:
                out.setdefault(h, StepResult(Status.FAILED, message=f"replica {rep.index}: a rank's host is "
                                             "unreachable; the group is left as it is"))
            return out
        plan = gang_plan(wanted, observed)
        if plan.action == "noop" and not params.restart:
            return {w.host: StepResult(Status.OK, f"{w.target} rank {w.node_rank}: {plan.summary}") for w in wanted}
        summary = plan.summary if plan.action != "noop" else "restart the whole group (asked)"
        if ctx.check:
            return {w.host: StepResult(Status.CHANGED, f"replica {rep.index}: would {summary}") for w in wanted}
        try:
            self._apply(ctx, wanted)
        except StepFailed as e:
            self._stop_all(ctx, wanted)  # never leave half a group running
            for w in wanted:
                r = e.result
                out[w.host] = StepResult(
                    Status.FAILED, summary,
                    message=e.message if w.host == e.host else f"replica {rep.index} not started: {e.host}: {e.message}",
                    exit_code=r.exit_code if r is not None and w.host == e.host else None,
                    tail=r.tail() if r is not None and w.host == e.host else "")
            return out
        return {w.host: StepResult(Status.CHANGED, f"replica {rep.index} rank {w.node_rank}: {summary}") for w in wanted}

    # ---- apply ----------------------------------------------------------------------------
    def _apply(self, ctx: ClusterContext, wanted: list[RankLaunch]) -> None:
        cluster = ctx.inventory.cluster.name

        def files(w: RankLaunch) -> None:
            ctx.progress(w.host, "writing config")
            self._ok(ctx, w.host, Shell.cmd("install", "-d", "-m", "0700", "-o", "root", "-g", "root",
                                            cluster_dir(cluster), sudo=True))
            self._put(ctx, w.host, Upload(w.env_path, w.env_content.encode(), 0o600, "root", "root", sudo=True))
            if w.secrets is not None and w.secrets_path is not None:
                self._put(ctx, w.host, Upload(w.secrets_path, w.secrets.value.encode(), 0o600, "root", "root",
                                              sudo=True, description=f"write {w.secrets_path} (secret, mode 0600)"))
            if w.unit_path is not None and w.unit_content is not None:
                self._put(ctx, w.host, Upload(w.unit_path, w.unit_content.encode(), 0o644, "root", "root", sudo=True))

        self._each(ctx, wanted, files)
        self._stop_all(ctx, wanted, strict=True)
        head, workers = wanted[0], wanted[1:]
        ctx.progress(head.host, "starting rank 0")
        self._ok(ctx, head.host, start_command(head))

        def start(w: RankLaunch) -> None:
            ctx.progress(w.host, f"starting rank {w.node_rank}")
            self._ok(ctx, w.host, start_command(w))

        self._each(ctx, workers, start)
        for w in wanted:
            ctx.progress(w.host, "started")

    def _stop_all(self, ctx: ClusterContext, wanted: list[RankLaunch], strict: bool = False) -> None:
        head, workers = wanted[0], wanted[1:]

        def stop(w: RankLaunch) -> None:
            ctx.progress(w.host, "stopping the group" if w is head else "stopping (after the head)")
            res = ctx.run(w.host, stop_command(w, w is head))
            if strict and not res.ok:
                raise StepFailed(w.host, f"could not stop {w.target}", res)

        try:
            stop(head)
            self._each(ctx, workers, stop)
        except (StepFailed, TransportError):
            if strict:
                raise

    def _each(self, ctx: ClusterContext, items: list[RankLaunch], fn: object) -> None:
        if not items:
            return
        by_host = {w.host: w for w in items}
        got = ctx.fan_out(lambda h: fn(by_host[h]), list(by_host), timeout=None)  # type: ignore[operator]
        for h, hr in got.items():
            if hr.error is not None:
                if isinstance(hr.error, StepFailed):
                    raise hr.error
                raise StepFailed(h, str(getattr(hr.error, "message", hr.error)))

    def _ok(self, ctx: ClusterContext, host: str, cmd: Shell) -> CommandResult:
        res = ctx.run(host, cmd)
        if not res.ok:
            raise StepFailed(host, f"{cmd.display()} exited {res.exit_code}", res)
        return res

    def _put(self, ctx: ClusterContext, host: str, up: Upload) -> None:
        res = ctx.put(host, up)
        if not res.ok:
            raise StepFailed(host, f"{up.display()} failed", res)
