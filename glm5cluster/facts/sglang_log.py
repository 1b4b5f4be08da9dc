"""Reading an SGLang rank's log: its start-up phase, and the probable cause when it failed.

Pure functions over log lines, tested on real captured logs in
``tests/facts/sglang_log/`` and on a 0.5.23-format log built from the templates. The milestones
are matched from ``sglang_log_templates.json``: the real wheels' log templates with file:line, per
wording family (0.5.23: ``Init parallel begin.``, ``Capture target decode CUDA graph begin.``;
0.5.9 and older: ``Init torch distributed begin.``, ``Capture cuda graph begin.``). The lab
simulator prints from the same table. The failure patterns come from the failure table of
``docs/`` (torch / NCCL / transformers wording seen in real logs) and the table's crash lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class Phase(IntEnum):
    """Start-up milestones in the order a rank passes them."""

    STARTING = 0
    RENDEZVOUS = 1
    LOADING = 2
    KV_CACHE = 3
    GRAPH_CAPTURE = 4
    HTTP_UP = 5
    READY = 6

    @property
    def label(self) -> str:
        return {
            Phase.STARTING: "starting",
            Phase.RENDEZVOUS: "rendezvous",
            Phase.LOADING: "loading weights",
            Phase.KV_CACHE: "KV cache",
            Phase.GRAPH_CAPTURE: "graph capture",
            Phase.HTTP_UP: "warming up",
            Phase.READY: "ready",
        }[self]


TEMPLATES_FILE = Path(__file__).with_name("sglang_log_templates.json")

# Which template marks which phase (the same keys in every wording family).
PHASE_OF_TEMPLATE: dict[str, Phase] = {
    "dist_begin": Phase.RENDEZVOUS,
    "dist_end": Phase.LOADING,
    "load_begin": Phase.LOADING,
    "load_end": Phase.KV_CACHE,
    "kv_allocated": Phase.KV_CACHE,
    "memory_pool_end": Phase.KV_CACHE,
    "graph_begin": Phase.GRAPH_CAPTURE,
    "graph_end": Phase.HTTP_UP,
    "uvicorn_running": Phase.HTTP_UP,
    "uvicorn_startup_complete": Phase.HTTP_UP,
    "dummy_health_started": Phase.HTTP_UP,
    "ready": Phase.READY,
}


def load_templates() -> dict[str, dict[str, str]]:
    """family (and ``third_party``) -> template key -> template text."""
    table = json.loads(TEMPLATES_FILE.read_text(encoding="utf-8"))
    out = {fam: {k: v["text"] for k, v in body["templates"].items()} for fam, body in table["families"].items()}
    out["third_party"] = {k: v["text"] for k, v in table["third_party"].items()}
    return out


def template_regex(text: str, head_only: bool = False) -> str:
    """A template as a regex: literal text escaped, each ``{field}`` any text. ``head_only``
    keeps the first sentence (up to the first ``". "``), which is what stays stable when a
    release adds fields after it (a real 0.5.x log prints ``Init torch distributed ends. mem
    usage=3.32 GB`` where 0.5.9 prints ``elapsed=..., mem usage=...``)."""
    if head_only and ". " in text:
        text = text[: text.index(". ") + 1]
    parts = re.split(r"\{[^{}]*\}", text)
    return ".+?".join(re.escape(p) for p in parts)


def _milestones() -> tuple[tuple[Phase, re.Pattern[str]], ...]:
    families = load_templates()
    by_phase: dict[Phase, set[str]] = {}
    for family in families.values():
        for key, text in family.items():
            if key in PHASE_OF_TEMPLATE:
                by_phase.setdefault(PHASE_OF_TEMPLATE[key], set()).add(template_regex(text, head_only=True))
    return tuple((p, re.compile("|".join(sorted(by_phase[p])))) for p in sorted(by_phase))


def _crash_pattern() -> str:
    lines = set()
    for family in load_templates().values():
        for key in ("scheduler_exception", "sigquit_child"):
            if key in family:
                lines.add(template_regex(family[key], head_only=True))
    return "|".join(sorted(lines))


_MILESTONES = _milestones()


@dataclass(frozen=True)
class Cause:
    """A known failure: what it is and how to fix it. ``primary`` causes outrank the echoes
    that other ranks print when a peer dies (``remote process exited``)."""

    key: str
    title: str
    fix: str
    primary: bool = True


@dataclass(frozen=True)
class _Rule:
    cause: Cause
    pattern: re.Pattern[str]


def _rule(key: str, title: str, fix: str, pattern: str, primary: bool = True) -> _Rule:
    return _Rule(Cause(key, title, fix, primary), re.compile(pattern))


# Order matters: the first rule that matches a line names the cause of that line.
RULES: tuple[_Rule, ...] = (
    _rule("old_transformers", "transformers in the runtime does not know GLM-5 (glm_moe_dsa)",
          "use an SGLang release/image whose transformers knows glm_moe_dsa (0.5.23 pins 5.19.0), "
          "see sgl-project/sglang#19408",
          r"KeyError: 'glm_moe_dsa'|model type `glm_moe_dsa` but Transformers does not recognize"),
    _rule("bad_flag", "a launch flag the installed SGLang does not accept",
          "fix the flag for this SGLang version (glm5cluster plan shows the rendered arguments)",
          r"launch_server(\.py)?: error: |sglang serve: error: |error: unrecognized arguments"),
    _rule("missing_shard", "a weight file is missing or incomplete on this node",
          "re-run `glm5cluster up` to restage the weights (only missing/corrupt files are fetched)",
          r"(FileNotFoundError|No such file or directory).*\.safetensors|missing shard|"
          r"safetensors_rust\.SafetensorError|Error while deserializing header"),
    _rule("oom", "out of GPU memory while loading the model",
          "lower --mem-fraction-static or use more GPUs (BF16 needs twice the GPUs of FP8)",
          r"OutOfMemoryError|CUDA out of memory|HIP out of memory|Not enough memory\. Please try to increase "
          r"--mem-fraction-static|leave no GPU memory for the KV cache"),
    _rule("wrong_interface", "Gloo/NCCL picked the wrong network interface",
          "set the host's `interface` in the inventory (GLOO_SOCKET_IFNAME/NCCL_SOCKET_IFNAME)",
          r"Gloo connectFullMesh failed|connectFullMesh failed"),
    _rule("roce_gid", "RoCE GID index mismatch (NCCL IB error after init)",
          "set NCCL_IB_GID_INDEX=3 (or the index show_gids reports) in serving.env",
          r"NET/IB.*(error 12|ibv_modify_qp|GID)|ibv_modify_qp failed"),
    _rule("dist_init_unreachable", "the dist-init address of node 0 cannot be reached",
          "check the cluster address and that TCP to node 0's dist-init port is open between nodes",
          r"DistStoreError|timed out after 1800000ms|Timed out after \d+ seconds waiting for clients|"
          r"c10d.*(Connection refused|timed out)|TCPStore.*(refused|timed out)|"
          r"connect to \S+ returned Connection refused, exceeded error retry count"),
    _rule("dist_timeout", "a collective timed out during a long load",
          "raise --dist-timeout (loads of 1.5 TB take tens of minutes)",
          r"Watchdog caught collective operation timeout"),
    _rule("load_barrier", "ranks finished loading at very different times (480 s barrier)",
          "stage weights on local NVMe of every node (glm5cluster does by default)",
          r"other ranks that didn't finish"),
    _rule("warmup_timeout", "the warmup request timed out",
          "raise SGLANG_WARMUP_TIMEOUT in serving.env (first request includes JIT warmup)",
          r"Read timed out\. \(read timeout=600\)|Initialization failed\. warmup error"),
    _rule("collective_stall", "a cross-node collective stalled (network)",
          "check the cluster network between nodes (NCCL_DEBUG=INFO in serving.env)",
          r"ProcessGroupNCCL.*ran for \d+ ?m?s"),
    _rule("no_gpu", "the GPU driver or devices are not usable",
          "run `glm5cluster up` to verify the GPU stack (driver, fabric manager) on this host",
          r"no CUDA-capable device|Error 802|NVIDIA-SMI has failed|Driver/library version mismatch|"
          r"RuntimeError: No HIP GPUs are available|Found no NVIDIA driver"),
    _rule("peer_died", "a peer rank exited (this rank only saw it go)",
          "look at the first failing rank's log",
          r"remote process exited or there was a network error|Connection reset by peer|"
          r"Received SIGTERM from the head|peer rank .* (died|exited)", primary=False),
    _rule("crash", "the server process crashed",
          "read the traceback above (glm5cluster logs --node ...)",
          _crash_pattern() + r"|Traceback \(most recent call last\)|Exception in thread", primary=False),
)


@dataclass(frozen=True)
class Finding:
    cause: Cause
    line_no: int
    line: str


@dataclass(frozen=True)
class LogReading:
    phase: Phase
    findings: tuple[Finding, ...]

    @property
    def failure(self) -> Finding | None:
        """The most telling failure in this log: the first primary one, else the first one."""
        for f in self.findings:
            if f.cause.primary:
                return f
        return self.findings[0] if self.findings else None


def phase_of(lines: Iterable[str]) -> Phase:
    phase = Phase.STARTING
    for line in lines:
        for p, pat in _MILESTONES:
            if p > phase and pat.search(line):
                phase = p
    return phase


def _transient(f: Finding) -> bool:
    """A c10d connect warning (no exception) while node 0 is not listening yet: normal on a
    rank that starts first, and no failure once the group formed."""
    return f.cause.key == "dist_init_unreachable" and "Error" not in f.line


def read_log(lines: Sequence[str]) -> LogReading:
    phase = Phase.STARTING
    findings: list[Finding] = []
    seen: set[str] = set()
    for i, line in enumerate(lines, 1):
        for p, pat in _MILESTONES:
            if p > phase and pat.search(line):
                phase = p
        for rule in RULES:
            if rule.pattern.search(line):
                if rule.cause.key not in seen:
                    seen.add(rule.cause.key)
                    findings.append(Finding(rule.cause, i, line.strip()[:300]))
                break
    if phase > Phase.RENDEZVOUS:
        findings = [f for f in findings if not _transient(f)]
    return LogReading(phase, tuple(findings))


@dataclass(frozen=True)
class RankLog:
    """One rank's log as the readiness watcher collected it."""

    rank: int
    host: str
    lines: tuple[str, ...]
    exited: bool = False
    exit_code: int | None = None
    exited_at: float | None = None  # seconds since epoch, when known


@dataclass(frozen=True)
class Diagnosis:
    rank: int
    host: str
    cause: Cause
    evidence: str

    def message(self) -> str:
        return f"rank {self.rank} on {self.host}: {self.cause.title}: {self.evidence}"


def diagnose(ranks: Sequence[RankLog]) -> Diagnosis | None:
    """Name the first failing rank and the probable cause across a TP group's logs.

    A rank with a primary cause beats one that only echoes a peer's death; among equals the
    one that exited first (or, with no exit times, the lowest rank) is named.
    """
    candidates: list[tuple[int, float, int, Diagnosis]] = []
    for r in ranks:
        reading = read_log(r.lines)
        f = reading.failure
        if f is None and not r.exited:
            continue
        if f is None:
            cause = Cause("exited", f"the server process exited (code {r.exit_code})",
                          "read this rank's log (glm5cluster logs --node ...)", primary=False)
            diag = Diagnosis(r.rank, r.host, cause, "no error line in the log")
        else:
            diag = Diagnosis(r.rank, r.host, f.cause, f.line)
        tier = 0 if diag.cause.primary else 1
        when = r.exited_at if r.exited_at is not None else float("inf")
        candidates.append((tier, when, r.rank, diag))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    return candidates[0][3]
