"""The gang decision for a replica (pure; used by the ``launch`` procedure).

A TP group lives and restarts as one: when every rank runs the wanted config and nothing else
of the cluster runs on its hosts, nothing happens; otherwise *all* ranks of the replica are
stopped (the head first, so it drains), with whatever the cluster left on those hosts under
another name or runtime (a container after switching to venv, replica 0's rank 1 after a
topology change), and started again. What runs and how is the runtime's
(``glm5cluster.runtime``); this module only decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from glm5cluster.facts.rank_state import RankState
from glm5cluster.runtime.rank import RankLaunch
from glm5cluster.runtime.survey import Item


@dataclass(frozen=True)
class GangPlan:
    action: str  # "noop" | "start" | "restart"
    reasons: tuple[str, ...]  # one per rank that is not as wanted
    stale: Mapping[str, tuple[Item, ...]]  # per host: the cluster's other services to stop and remove

    @property
    def summary(self) -> str:
        if self.action == "noop":
            return "running, config unchanged"
        return f"{self.action} the whole group: " + "; ".join(self.reasons)


def _stale_reason(host: str, it: Item, wanted: RankLaunch) -> str:
    if it.stem == wanted.service.stem and it.kind != wanted.runtime.kind:
        return (f"{it.name} on {host} ({it.state}) was started by the {it.runtime_mode} runtime; "
                f"the inventory says {wanted.runtime.mode}")
    return f"{it.name} on {host} ({it.state}) is left from an earlier topology"


def gang_plan(wanted: Sequence[RankLaunch], observed: Mapping[str, RankState],
              others: Mapping[str, Sequence[Item]] | None = None) -> GangPlan:
    """NoOp when every rank runs its wanted config and no other rank service of the cluster
    runs on the group's hosts; else stop everything and start the whole group."""
    reasons: list[str] = []
    stale: dict[str, tuple[Item, ...]] = {}
    any_running = False
    for w in wanted:
        st = observed.get(w.host)
        where = f"rank {w.node_rank} on {w.host}"
        if st is None:
            reasons.append(f"{where}: state unknown")
            continue
        any_running |= st.running
        if not st.running:
            code = f", exit code {st.exit_code}" if st.exit_code is not None else ""
            reasons.append(f"{where}: not running ({st.detail}{code})" if st.exists else f"{where}: not launched")
        elif st.digest != w.digest:
            reasons.append(f"{where}: config changed" if st.digest else f"{where}: started outside this launch")
        # ranks only: the router (replica None) is the router step's business
        extra = tuple(i for i in (others or {}).get(w.host, ()) if i.replica is not None)
        if extra:
            stale[w.host] = extra
            any_running |= any(i.running for i in extra)
            reasons += [_stale_reason(w.host, i, w) for i in extra]
    if not reasons:
        return GangPlan("noop", (), {})
    return GangPlan("restart" if any_running else "start", tuple(reasons), stale)
