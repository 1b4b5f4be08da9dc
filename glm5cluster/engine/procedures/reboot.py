"""``gpu.reboot``: reboot the hosts whose GPU stack needs it (only with ``--allow-reboot``), wait
for SSH with a deadline over a NEW connection, and verify loaded == installed driver; then check
driver-version parity across each replica."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from glm5cluster.commands import Shell
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.errors import TransportError
from glm5cluster.facts.packages import StackFact, StackState
from glm5cluster.model.catalog import gpu_profile
from glm5cluster.tasks.reboot import driver_parity, loaded_driver, reboot_reason

MARKER = "/run/glm5cluster-reboot-pending"


class RebootParams(Params):
    allow_reboot: bool = False  # the CLI's --allow-reboot also allows it (ctx.allow_reboot)
    ssh_deadline: float = 900.0  # seconds to wait for SSH after a reboot
    poll_interval: float = 3.0


def _probe(ctx: ClusterContext, host: str) -> StackState:
    fact = StackFact()
    return fact.parse(ctx.run(host, fact.command()))


class Reboot:
    name = "gpu.reboot"
    Params = RebootParams

    def run(self, params: RebootParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        br = ctx.inventory.stack.nvidia.driver_branch
        states = ctx.fan_out(lambda h: _probe(ctx, h))
        results: dict[str, StepResult] = {}
        need: dict[str, str] = {}
        for h, r in states.items():
            if not r.ok or r.value is None:
                results[h] = StepResult(Status.UNREACHABLE if r.unreachable else Status.FAILED, message=str(r.error))
                continue
            why = reboot_reason(r.value, gpu_profile(ctx.nodes[h].gpu_kind).vendor, br)
            if why:
                need[h] = why
        if need and not (params.allow_reboot or ctx.allow_reboot):
            names = ", ".join(sorted(need))
            for h, why in need.items():
                results[h] = StepResult(Status.FAILED,
                                        message=f"{h} needs a reboot ({why}); not rebooting without --allow-reboot "
                                                f"(hosts needing one: {names})",
                                        hint="re-run with --allow-reboot, or reboot these hosts yourself and re-run")
        elif need and ctx.check:
            for h, why in need.items():
                results[h] = StepResult(Status.CHANGED, f"would reboot: {why}")
        elif need:
            got = ctx.fan_out(lambda h: self._reboot_one(ctx, h, params, br), sorted(need))
            for h, rr in got.items():
                results[h] = rr.value if rr.ok and rr.value else StepResult(
                    Status.UNREACHABLE if rr.unreachable else Status.FAILED, message=f"reboot: {rr.error}")
        for h, r in states.items():
            if h not in results and r.value is not None:
                results[h] = StepResult(Status.OK, f"no reboot needed (driver {loaded_driver(r.value) or 'n/a'})")
        self._parity(ctx, results, states, br)
        return results

    def _reboot_one(self, ctx: ClusterContext, host: str, params: RebootParams, br: str) -> StepResult:
        # A reboot shows as a new boot id, or as our marker gone from /run (a tmpfs on every
        # systemd host; in the lab, where hosts are containers, the boot id is the machine's).
        before = ctx.run(host, Shell.sh(f"touch {MARKER}; cat /proc/sys/kernel/random/boot_id", sudo=True,
                                        description="boot id"))
        boot_id = before.stdout.strip()
        ctx.progress(host, "rebooting")
        try:
            ctx.run(host, Shell.sh("nohup sh -c 'sleep 2; systemctl reboot' >/dev/null 2>&1 &", sudo=True,
                                   timeout=30, description="reboot"))
        except TransportError:
            pass  # the connection may drop as the host goes down
        ctx.reconnect(host)
        deadline = time.monotonic() + params.ssh_deadline
        time.sleep(min(5.0, params.poll_interval * 2))
        probe = Shell.sh(f"test -e {MARKER} && echo same-boot; cat /proc/sys/kernel/random/boot_id", timeout=15)
        while True:
            try:
                out = ctx.run(host, probe).stdout
                now = out.strip().splitlines()[-1] if out.strip() else ""
                if now and ("same-boot" not in out or now != boot_id):
                    break
            except TransportError:
                ctx.reconnect(host)
            if time.monotonic() > deadline:
                return StepResult(Status.UNREACHABLE, message=f"no SSH within {params.ssh_deadline:.0f}s after reboot",
                                  hint="check the host's console")
            ctx.progress(host, "waiting for SSH after reboot")
            time.sleep(params.poll_interval)
        ctx.progress(host, "back up; waiting for the boot to finish")
        ctx.run(host, Shell.sh("systemctl is-system-running --wait >/dev/null 2>&1 || true", timeout=120))
        ctx.progress(host, "back up; verifying the driver")
        st = _probe(ctx, host)
        still = reboot_reason(st, gpu_profile(ctx.nodes[host].gpu_kind).vendor, br)
        if still:
            return StepResult(Status.FAILED, message=f"rebooted, but {still}", hint="check dkms status and dmesg")
        return StepResult(Status.CHANGED, f"rebooted; loaded driver {loaded_driver(st) or 'n/a'} matches installed")

    def _parity(self, ctx: ClusterContext, results: dict[str, StepResult], states: Mapping[str, Any], br: str) -> None:
        topo = ctx.topology
        if topo is None:
            return
        versions: dict[str, str | None] = {}
        for h in ctx.hosts:
            if results.get(h) and results[h].status == Status.CHANGED and not ctx.check:
                versions[h] = loaded_driver(_probe(ctx, h))
            elif states.get(h) is not None and states[h].value is not None:
                versions[h] = loaded_driver(states[h].value)
        reps = [[r.node.name for r in rep.ranks if r.node.name in versions] for rep in topo.replicas]
        for line in driver_parity(versions, reps):
            for rep in reps:
                for h in rep:
                    if line.startswith(f"replica {reps.index(rep)}:") and not results[h].failed:
                        results[h] = StepResult(Status.FAILED, message=line, hint="install the same driver on every node")
