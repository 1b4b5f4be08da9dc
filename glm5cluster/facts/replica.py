"""What a replica is doing: node 0's HTTP answers and the verdict over its ranks' states.

Pure parsers and one pure judgement, tested on captured outputs in ``tests/facts/replica/``
(SGLang's ``/v1/models`` and ``/server_info`` answers; each rank's ``RankState`` is parsed by
its runtime, ``facts/rank_state.py``). Only node 0 serves the API: other ranks answer health
checks regardless (SGLang 0.5.23 ``srt/entrypoints/engine.py:1234-1281``: ranks >= 1 start a
dummy health-check server), so a replica is *serving* only when node 0 answers and every rank's process is up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from glm5cluster.facts.rank_state import RankState
from glm5cluster.facts.sglang_log import Finding, Phase, phase_of, read_log


class Verdict(StrEnum):
    SERVING = "serving"
    STARTING = "starting"
    BROKEN = "broken"
    STOPPED = "stopped"
    UNKNOWN = "unknown"  # a host could not be reached


# ---- node 0's HTTP answers ------------------------------------------------------------------
@dataclass(frozen=True)
class HttpReply:
    status: int | None  # None: no connection
    body: str = ""


def parse_http(text: str) -> HttpReply:
    """curl output written as ``<body>\\n<http code>`` (``-w '\\n%{http_code}'``); code 000 = no answer."""
    body, _, code = text.rstrip("\n").rpartition("\n")
    if not code.strip().isdigit():
        return HttpReply(None, text)
    n = int(code.strip())
    return HttpReply(n or None, body)


def model_ids(body: str) -> tuple[str, ...]:
    """The model ids of a ``/v1/models`` answer."""
    try:
        data = json.loads(body)
        return tuple(str(card["id"]) for card in data.get("data", []) if "id" in card)
    except (ValueError, TypeError, KeyError, AttributeError):
        return ()


def server_version(body: str) -> str | None:
    """``version`` of a ``/server_info`` (old name ``/get_server_info``) answer."""
    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        return None
    return str(version) if version else None


@dataclass(frozen=True)
class HeadProbe:
    health: HttpReply
    models: HttpReply
    server_info: HttpReply

    @property
    def healthy(self) -> bool:
        return self.health.status == 200

    @property
    def model_ids(self) -> tuple[str, ...]:
        return model_ids(self.models.body) if self.models.status == 200 else ()

    @property
    def version(self) -> str | None:
        return server_version(self.server_info.body) if self.server_info.status == 200 else None


# ---- the verdict ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RankView:
    rank: int
    host: str
    state: RankState
    log: tuple[str, ...] = ()

    @property
    def phase(self) -> Phase:
        return phase_of(self.log)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    rank: int | None = None  # the rank named (the first failing one when broken)
    host: str | None = None
    cause: str | None = None  # probable cause, from the log
    fix: str | None = None
    evidence: str | None = None


def _culprit(down: Sequence[RankView]) -> tuple[RankView, str | None, str | None, str | None]:
    """The first failing rank: a primary cause in its log beats a silent death (killed), which
    beats a rank that only saw its peer go; then the earliest to stop; then the lowest rank."""
    scored: list[tuple[int, float, int, RankView, Finding | None]] = []
    for r in down:
        reading = read_log(r.log)
        f = reading.failure
        if f is not None and f.cause.primary:
            tier = 0
        elif any(x.cause.key == "peer_died" for x in reading.findings):
            tier = 2  # it saw a peer go: an echo of the failure, not its origin
        else:
            tier = 1
        when = r.state.since if r.state.since is not None else float("inf")
        scored.append((tier, when, r.rank, r, f))
    scored.sort(key=lambda s: (s[0], s[1], s[2]))
    _, _, _, rank, finding = scored[0]
    if finding is None:
        return rank, None, None, None
    return rank, finding.cause.title, finding.cause.fix.replace("--node ...", f"--node {rank.host}"), finding.line


def judge(ranks: Sequence[RankView], head: HeadProbe | None, model: str | None = None) -> Judgement:
    """Serving / starting / broken / stopped / unknown for one replica (ranks head first)."""
    unreachable = [r for r in ranks if r.state.state == "unreachable"]
    known = [r for r in ranks if r.state.state != "unreachable"]
    up = [r for r in known if r.state.up]
    down = [r for r in known if not r.state.up]
    failed = [r for r in down if r.state.state == "failed"]
    if down and (up or failed):
        rank, title, fix, line = _culprit(failed or down)
        how = rank.state.how_it_ended() if rank.state.state in ("failed", "inactive") else rank.state.state
        reason = f"rank {rank.rank} on {rank.host} {how}" if rank.state.state != "absent" else \
            f"rank {rank.rank} on {rank.host} has no unit/container"
        others = [r for r in down if r is not rank]
        if others:
            reason += "; also down: " + ", ".join(f"rank {r.rank} ({r.host})" for r in others)
        if unreachable:  # a host that went away explains its peers' exits: named first
            names = ", ".join(r.host for r in unreachable)
            return Judgement(Verdict.BROKEN, f"cannot reach {names}; {reason}", unreachable[0].rank,
                             unreachable[0].host, title, fix, line)
        return Judgement(Verdict.BROKEN, reason, rank.rank, rank.host, title, fix, line)
    if unreachable:
        names = ", ".join(r.host for r in unreachable)
        return Judgement(Verdict.UNKNOWN, f"cannot reach {names}", unreachable[0].rank, unreachable[0].host)
    if not up:
        absent = all(r.state.state == "absent" for r in known)
        return Judgement(Verdict.STOPPED, "not deployed" if absent else "stopped")
    if head is not None and head.healthy:
        ids = head.model_ids
        if ids and (model is None or model in ids):
            return Judgement(Verdict.SERVING, f"node 0 healthy, serving {', '.join(ids)}")
        return Judgement(Verdict.STARTING, "node 0 healthy; /v1/models does not list the model yet")
    phases = ", ".join(f"rank {r.rank}: {r.phase.label}" for r in up)
    code = head.health.status if head is not None else None
    what = f"/health answers {code}" if code else "node 0 does not answer /health yet"
    return Judgement(Verdict.STARTING, f"{what} ({phases})")
