"""``readiness``: wait until every replica's node 0 serves, while watching every rank.

Every ``poll_interval`` seconds each rank's host reports its unit/container state and the new
lines of its log (one SSH command per rank); the head also probes ``/health`` and
``/v1/models`` on 127.0.0.1 (through the SSH connection, so jump hosts and firewalls do not
matter). Each rank's phase (``facts.sglang_log.phase_of``) is shown live. When a rank exits or
logs a fatal error, the watcher collects every rank's last lines once more, names the first
failing rank, host, probable cause and fix (``facts.sglang_log.diagnose``) and fails the replica.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from glm5cluster.commands import Secret, Shell
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.procedures.launch import api_key_of, per_replica, selected_replicas
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.facts.sglang_log import (
    Cause,
    Diagnosis,
    Finding,
    Phase,
    RankLog,
    diagnose,
    phase_of,
    read_log,
)
from glm5cluster.redact import mask
from glm5cluster.runtime import LOG_MARK, RankState, for_inventory, rank_stem
from glm5cluster.runtime.rank import stamp_path
from glm5cluster.sglang.args import served_model_name
from glm5cluster.tasks import agents
from glm5cluster.topology import Replica

KEEP_LINES = 400
HEALTH_MARK = "@@glm5cluster:health@@"  # the first word of tasks/agents/health_probe.py's line


class ReadinessParams(Params):
    timeout: float | None = None  # default: serving.readiness_timeout (3600 s)
    poll_interval: float = 1.5
    tail_lines: int = 12  # lines of each rank's log shown on failure
    unreachable_polls: int = 5  # consecutive failed polls before a host counts as unreachable


@dataclass
class _Rank:
    rank: int
    host: str
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=KEEP_LINES))
    seen: int = 0
    phase: Phase = Phase.STARTING
    state: RankState | None = None
    fatal: Finding | None = None
    misses: int = 0
    shown: str = ""


def fatal_now(f: Finding | None) -> bool:
    """A finding that ends the start-up even while the process lives. Connection-refused
    warnings while ranks wait for node 0 are normal; only the store's error is final."""
    if f is None or not f.cause.primary:
        return False
    return f.cause.key != "dist_init_unreachable" or "Error" in f.line


class Readiness:
    name = "readiness"
    Params = ReadinessParams

    def run(self, params: ReadinessParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        results: dict[str, StepResult] = {}
        if ctx.topology is None:
            return {h: StepResult(Status.FAILED, message="the inventory forms no topology") for h in ctx.hosts}
        replicas = selected_replicas(ctx, results)
        if ctx.check:
            for rep in replicas:
                for r in rep.ranks:
                    results[r.node.name] = StepResult(Status.SKIPPED, "check mode: readiness is judged after a launch")
            return results
        key, _ = api_key_of(ctx.inventory, os.environ)
        results.update(per_replica(ctx, replicas, "readiness watch", lambda rep: _Watch(params, ctx, rep, key).run()))
        return results


class _Watch:
    def __init__(self, params: ReadinessParams, ctx: ClusterContext, rep: Replica, key: str | None) -> None:
        self.p, self.ctx, self.rep, self.key = params, ctx, rep, key
        inv = ctx.inventory
        self.runtime = for_inventory(inv)
        self.target = self.runtime.target(rank_stem(inv.cluster.name, rep.index))
        self.stamp = stamp_path(inv.cluster.name, rep.index)
        self.port = inv.serving.http_port
        self.model = served_model_name(inv)
        self.timeout = params.timeout or inv.serving.readiness_timeout
        self.ranks = [_Rank(r.node_rank, r.node.name) for r in rep.ranks]
        self.head = self.ranks[0]
        self.health = (0, [])  # type: tuple[int, list[str]]
        self.polls = 0

    def poll(self) -> None:
        def one(r: _Rank) -> tuple[RankState, list[str], tuple[int, list[str]] | None]:
            rt = self.runtime
            script = (rt.state_script(self.target, self.stamp) + f"echo '{LOG_MARK}'\n"
                      + rt.run_log_script(self.target, skip=r.seen))
            stdin: str | Secret | None = None
            if r is self.head:
                probe = shlex.join(agents.command("health_probe", str(self.port)))
                script = f"{probe} 2>&1 | tail -n1\n" + script
                stdin = Secret("api_key", self.key + "\n") if self.key else "\n"
            res = self.ctx.run(r.host, Shell.sh(script, sudo=True, stdin=stdin, timeout=30,
                                                description=f"watch {self.target} rank {r.rank}"))
            text = res.stdout
            health = None
            if r is self.head and text.startswith(HEALTH_MARK):
                first, _, text = text.partition("\n")
                parts = first.split(" ", 2)
                try:
                    health = (int(parts[1]), list(json.loads(parts[2])))
                except (ValueError, IndexError):
                    health = (0, [])
            state_text, _, log = text.partition(LOG_MARK + "\n")
            state, lines = self.runtime.parse_state(self.target, state_text), log.splitlines()
            return state, lines, health

        by_host = {r.host: r for r in self.ranks}
        got = self.ctx.fan_out(lambda h: one(by_host[h]), list(by_host), timeout=60)
        for h, hr in got.items():
            r = by_host[h]
            if not hr.ok or hr.value is None:
                r.misses += 1
                continue
            r.misses = 0
            state, lines, health = hr.value
            r.state = state
            if lines:
                r.seen += len(lines)
                r.lines.extend(lines)
                r.phase = max(r.phase, phase_of(lines))
                if r.fatal is None:
                    f = read_log(lines).failure
                    r.fatal = f if fatal_now(f) else None
            if health is not None:
                self.health = health
            text = f"rank {r.rank}: {r.phase.label}" + ("" if state.running else f" ({state.detail})")
            if r is self.head and self.health[0]:
                text += f", /health {self.health[0]}"
            if text != r.shown:
                r.shown = text
                self.ctx.progress(h, text)

    def run(self) -> dict[str, StepResult]:
        start = time.monotonic()
        deadline = start + self.timeout
        self.polls = 0
        while True:
            self.poll()
            self.polls += 1
            lost = [r for r in self.ranks if r.misses >= self.p.unreachable_polls]
            if lost:
                return self._unreachable(lost)
            broken = [r for r in self.ranks if (r.state is not None and not r.state.running) or r.fatal]
            if broken:
                time.sleep(1.0)  # let the peers log what they saw, then read every rank once more
                self.poll()
                return self._failed(time.monotonic() - start)
            code, ids = self.health
            if code == 200 and self.model in ids:
                return self._ready()
            if time.monotonic() >= deadline:
                return self._timeout()
            time.sleep(self.p.poll_interval)

    # ---- outcomes -------------------------------------------------------------------------
    def _ready(self) -> dict[str, StepResult]:
        hs = self.head.state
        took = (hs.now - hs.started_at) if hs and hs.now and hs.started_at else None
        if self.polls <= 1:  # already serving when the watch began (a re-run on a healthy cluster)
            state = f"serving (up {took:.0f}s)" if took is not None else "serving"
        else:
            state = f"ready in {took:.0f}s since launch" if took is not None else "ready"
        out = {}
        for r in self.ranks:
            what = (f"replica {self.rep.index} {state}: {self.rep.endpoint} serves {self.model}"
                    if r is self.head else f"rank {r.rank}: {r.phase.label}, group ready")
            out[r.host] = StepResult(Status.OK, what)
        return out

    def _tail(self, r: _Rank) -> str:
        return mask("\n".join(list(r.lines)[-self.p.tail_lines:]))

    def _failed(self, waited: float) -> dict[str, StepResult]:
        logs = [RankLog(r.rank, r.host, tuple(r.lines), exited=bool(r.state and not r.state.running),
                        exit_code=_shell_code(r.state),
                        exited_at=r.state.exited_at if r.state else None) for r in self.ranks]
        diag = diagnose(logs) or self._fallback()
        culprit = next(r for r in self.ranks if r.rank == diag.rank)
        st = culprit.state
        noticed = ""
        if st is not None and st.exited_at and st.now:
            noticed = f" (noticed {max(0.0, st.now - st.exited_at):.1f}s after it exited)"
        msg = (f"replica {self.rep.index}: rank {diag.rank} on {diag.host}: {diag.cause.title}{noticed}: "
               f"{diag.evidence}")
        hint = f"{diag.cause.fix}; then re-run `glm5cluster up` (the whole group restarts)"
        out = {}
        for r in self.ranks:
            phases = ", ".join(f"rank {x.rank} {x.phase.label}" for x in self.ranks)
            out[r.host] = StepResult(
                Status.FAILED, f"replica {self.rep.index} failed after {waited:.0f}s ({phases})",
                message=msg if r is culprit else f"group failed: {msg}", hint=hint, tail=self._tail(r))
        return out

    def _fallback(self) -> Diagnosis:
        r = next((x for x in self.ranks if x.state and not x.state.running), self.ranks[0])
        how = r.state.how_it_ended() if r.state else "state unknown"
        return Diagnosis(r.rank, r.host, Cause("exited", f"the server process is not running ({how})",
                                               "read this rank's log (glm5cluster logs)"), "no error line in the log")

    def _timeout(self) -> dict[str, StepResult]:
        phases = ", ".join(f"rank {r.rank} on {r.host}: {r.phase.label}" for r in self.ranks)
        slowest = min(self.ranks, key=lambda r: r.phase)
        msg = (f"replica {self.rep.index} not ready after {self.timeout:.0f}s ({phases}); "
               f"node 0 /health {self.health[0] or 'no answer'}")
        return {r.host: StepResult(Status.FAILED, message=msg, tail=self._tail(r),
                                   hint=f"rank {slowest.rank} on {slowest.host} is furthest behind; raise "
                                        "serving.readiness_timeout (up --ready-timeout) if loading is just slow")
                for r in self.ranks}

    def _unreachable(self, lost: list[_Rank]) -> dict[str, StepResult]:
        names = ", ".join(r.host for r in lost)
        out = {}
        for r in self.ranks:
            if r in lost:
                out[r.host] = StepResult(Status.UNREACHABLE, message=f"no answer over SSH for "
                                         f"{self.p.unreachable_polls} polls while waiting for readiness")
            else:
                out[r.host] = StepResult(Status.FAILED, message=f"replica {self.rep.index}: lost contact with {names}")
        return out


def _shell_code(st: RankState | None) -> int | None:
    """The exit status as a shell reports it (128 + N for a signal)."""
    if st is None:
        return None
    return st.exit_code if st.exit_code is not None else (128 + st.signal if st.signal else None)
