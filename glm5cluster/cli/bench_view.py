"""How `glm5cluster bench` shows results: the comparison table (rich on a terminal, plain
text otherwise), JSON, and the history (a table, or a compact trend per metric when narrow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from glm5cluster.bench.compare import HEADLINE, SuiteComparison, Verdict
from glm5cluster.bench.records import BenchRun, Suite

UNITS = {"request_throughput": "req/s", "input_throughput": "tok/s", "output_throughput": "tok/s",
         "total_throughput": "tok/s", "accuracy": "", "invalid": "", "latency_s": "s", "accept_length": ""}
LABELS = {"request_throughput": "request throughput", "output_throughput": "output throughput",
          "total_throughput": "total throughput", "mean_ttft_ms": "mean TTFT", "mean_tpot_ms": "mean TPOT",
          "accept_length": "accept length", "accuracy": "accuracy", "invalid": "invalid",
          "latency_s": "latency"}


def fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    unit = UNITS.get(metric, "ms" if metric.endswith("_ms") else "")
    if metric in ("accuracy", "invalid"):
        return f"{value:.3f}"
    return f"{value:.2f} {unit}".strip()


def comparison_rows(comps: Sequence[SuiteComparison]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for c in comps:
        head = f"{c.run.suite.value} r{c.run.replica}"
        if not c.run.ok:
            rows.append((head, "FAILED", "", "", "", c.run.error.splitlines()[0] if c.run.error else ""))
            continue
        for i, ch in enumerate(c.checks):
            prev = fmt(ch.metric, ch.previous)
            pub = fmt(ch.metric, ch.published) if ch.published is not None else (
                "no published figure" if i == 0 and c.published_note == "no published figure" else "-")
            verdict = {Verdict.OK: "ok", Verdict.REGRESSION: "REGRESSION", Verdict.NO_BASELINE: "no baseline"}[ch.verdict]
            rows.append((head if i == 0 else "", LABELS.get(ch.metric, ch.metric), fmt(ch.metric, ch.value),
                         pub, prev, verdict + (f": {ch.reason}" if ch.reason else "")))
    return rows


HEADERS = ("suite", "metric", "this run", "cookbook", "previous", "verdict")


def print_comparison(run: BenchRun, comps: Sequence[SuiteComparison], out: TextIO, rich: bool,
                     gate: bool | None) -> None:
    title = (f"{run.cluster}  {run.hardware.label()}  sglang {run.sglang_version}  "
             f"config {run.config_digest}{'  via router' if run.via_router else ''}  {run.stamp}")
    rows = comparison_rows(comps)
    if rich:
        from rich.table import Table

        from glm5cluster.cli.display import make_console

        table = Table(title=title)
        for h in HEADERS:
            table.add_column(h)
        for r in rows:
            style = "red" if "REGRESSION" in r[5] or r[1] == "FAILED" else None
            table.add_row(*r, style=style)
        make_console(file=out).print(table)
    else:
        out.write(title + "\n")
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
        for r in (HEADERS, *rows):
            out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() + "\n")
    for c in comps:
        if c.previous_stamp:
            out.write(f"{c.run.suite.value} r{c.run.replica}: previous run {c.previous_stamp}\n")
        if not c.run.ok:
            out.write(f"{c.run.suite.value} r{c.run.replica} failed: {c.run.error}\n")
    if gate is not None:
        out.write("gate: PASSED\n" if gate else "gate: FAILED (regression beyond tolerance or a failed suite)\n")


def comparison_json(run: BenchRun, comps: Sequence[SuiteComparison], gate: bool | None) -> dict[str, object]:
    return {"run": run.to_json(), "gate_passed": gate, "comparisons": [{
        "suite": c.run.suite.value, "replica": c.run.replica, "ok": c.run.ok, "error": c.run.error or None,
        "published": c.published_note, "previous_stamp": c.previous_stamp,
        "checks": [{"metric": ch.metric, "value": ch.value, "published": ch.published, "previous": ch.previous,
                    "verdict": ch.verdict.value, "reason": ch.reason or None} for ch in c.checks],
    } for c in comps]}


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(SPARK[0 if span == 0 else min(7, int((v - lo) / span * 7 + 0.5))] for v in values)


def history_rows(runs: Sequence[BenchRun]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for run in runs:
        gate = {None: "", True: "passed", False: "FAILED"}[run.gate_passed]
        for r in run.results:
            shown = " ".join(f"{LABELS.get(m, m)} {fmt(m, r.metrics[m])}" for m in HEADLINE[r.suite][:3]
                             if m in r.metrics) if r.ok else "FAILED"
            rows.append((run.stamp, run.sglang_version, run.config_digest[:8], f"{r.suite.value} r{r.replica}",
                         shown, gate))
    return rows


def print_history(runs: Sequence[BenchRun], out: TextIO, width: int) -> None:
    if not runs:
        out.write("no benchmark runs kept for this cluster yet (run `glm5cluster bench INVENTORY`)\n")
        return
    if width >= 100:
        heads = ("when (UTC)", "sglang", "config", "suite", "result", "gate")
        rows = history_rows(runs)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
        for r in (heads, *rows):
            out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() + "\n")
        return
    # narrow terminal: one compact trend per suite and metric, oldest -> newest
    for suite in Suite:
        for metric in HEADLINE[suite]:
            vals = [r.metrics[metric] for run in runs for r in run.results
                    if r.suite is suite and r.ok and metric in r.metrics]
            if vals:
                out.write(f"{suite.value} {LABELS.get(metric, metric)}: {sparkline(vals)} "
                          f"last {fmt(metric, vals[-1])} ({len(vals)} runs)\n")
