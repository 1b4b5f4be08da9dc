"""The NCCL probe's output (``GLM5PROBE {json}`` lines, see tasks/agents/nccl_probe.py), parsed.

Anything else on the probe's output (NCCL INFO lines, torch warnings) is ignored. Tested on the
real H200 captures in ``tests/facts/nccl_probe/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

PREFIX = "GLM5PROBE "


@dataclass(frozen=True)
class ProbeResult:
    node_rank: int
    phase: str  # local | global
    size: int
    ranks: int
    time_us: float
    busbw_gbps: float
    algbw_gbps: float


@dataclass(frozen=True)
class ProbeError:
    node_rank: int
    rank: int
    stage: str  # import, device, init, local:<bytes>, global:<bytes>, timeout
    message: str


@dataclass(frozen=True)
class ProbeRun:
    """One node's probe output."""

    init_s: tuple[float, ...] = ()
    results: tuple[ProbeResult, ...] = ()
    errors: tuple[ProbeError, ...] = ()
    done: bool = False
    ok: bool = False
    wall_s: float | None = None
    garbled: tuple[str, ...] = field(default=())
    last_other: str = ""  # the last line that is not the probe's (a shell or python error)
    reached: tuple[int, ...] = ()  # ranks whose TCP connect to the rendezvous worked
    stages: tuple[tuple[int, str], ...] = ()  # each rank's last stage mark (rank, stage), in rank order

    def best(self, phase: str) -> ProbeResult | None:
        """The result of ``phase`` at the largest size (what the gate judges: busbw plateaus there)."""
        rs = [r for r in self.results if r.phase == phase]
        return max(rs, key=lambda r: r.size) if rs else None

    @property
    def stuck_at(self) -> str | None:
        """The earliest stage a rank of this node was last seen in before the group formed
        (``device``, ``reach`` or ``init``); None when every rank got past init or said nothing."""
        order = ("device", "reach", "init")
        seen = [st for _, st in self.stages if st in order]
        return min(seen, key=order.index) if seen and not self.init_s else None

    @property
    def timed_out(self) -> bool:
        return any(e.stage == "timeout" for e in self.errors)


def parse_probe(text: str) -> ProbeRun:
    init: list[float] = []
    results: list[ProbeResult] = []
    errors: list[ProbeError] = []
    garbled: list[str] = []
    done, ok, wall = False, False, None
    other = ""
    reached: list[int] = []
    stages: dict[int, str] = {}
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            other = line.strip()[:300] or other
            continue
        try:
            ev = json.loads(line[len(PREFIX):])
            kind = ev["event"]
            if kind == "reached":
                reached.append(int(ev["rank"]))
            elif kind == "stage":
                stages[int(ev["rank"])] = str(ev["stage"])
            elif kind == "init":
                init.append(float(ev["init_s"]))
            elif kind == "result":
                results.append(ProbeResult(int(ev["node_rank"]), str(ev["phase"]), int(ev["size"]),
                                           int(ev["ranks"]), float(ev["time_us"]), float(ev["busbw_gbps"]),
                                           float(ev["algbw_gbps"])))
            elif kind == "error":
                errors.append(ProbeError(int(ev["node_rank"]), int(ev["rank"]), str(ev["stage"]),
                                         str(ev["message"])))
            elif kind == "done":
                done, ok, wall = True, bool(ev["ok"]), float(ev["wall_s"])
        except (ValueError, KeyError, TypeError):
            garbled.append(line[:200])
    return ProbeRun(tuple(init), tuple(results), tuple(errors), done, ok, wall, tuple(garbled), other, tuple(reached),
                    tuple(sorted(stages.items())))


def split_runs(text: str) -> list[str]:
    """A log holding several probe runs back to back: one text per run (each ends at ``done``)."""
    runs, cur = [], []
    for line in text.splitlines():
        cur.append(line)
        if line.startswith(PREFIX) and '"event":"done"' in line:
            runs.append("\n".join(cur))
            cur = []
    return runs
