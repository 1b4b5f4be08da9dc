"""What a run shows: a live line per host on a terminal, plain lines otherwise, and the recap.

The display is an event sink (``engine.events``); it is called from worker threads.
rich is imported only for the live display, so plain runs (CI, pipes, benchmarks) start fast.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

from glm5cluster.engine.events import Event, EventKind, Transfer
from glm5cluster.engine.report import INTERRUPTED, RunReport, Status, StepResult
from glm5cluster.redact import mask

_MARK = {Status.OK: "ok", Status.CHANGED: "changed", Status.FAILED: "FAILED",
         Status.SKIPPED: "skipped", Status.UNREACHABLE: "UNREACHABLE"}
_STYLE = {Status.OK: "green", Status.CHANGED: "yellow", Status.FAILED: "bold red",
          Status.SKIPPED: "cyan", Status.UNREACHABLE: "bold magenta"}


PLAIN_PROGRESS_EVERY = 15.0  # seconds between a host's progress lines when not a terminal


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def transfer_text(t: Transfer) -> str:
    """``12.0 GiB/80.0 GiB 450.0 MiB/s ETA 2m33s`` (bytes, rate, time left)."""
    eta = "-" if t.eta is None else f"{int(t.eta) // 60}m{int(t.eta) % 60:02d}s"
    return f"{_bytes(t.done)}/{_bytes(t.total)} {_bytes(t.rate)}/s ETA {eta}"


def _one_line(text: str, limit: int = 0) -> str:
    """One line, whitespace collapsed, never cut: causes, addresses and paths are the point of a
    step's message (``limit`` is accepted and ignored)."""
    return " ".join(text.split())


class Display:
    def __init__(self, out: TextIO | None = None, live: bool | None = None, verbose: bool = False) -> None:
        self.out = out or sys.stdout
        self.live_mode = self.out.isatty() if live is None else live
        self.verbose = verbose
        self._lock = threading.Lock()
        self._hosts: list[str] = []
        self._current: dict[str, tuple[str, float, str]] = {}  # host -> (step, started, status)
        self._phase = ""
        self._step_counts: dict[Status, int] = {}
        self._live: Any = None
        self._transfer: dict[str, Transfer] = {}  # host -> its transfer in the current step
        self._plain_last: dict[str, float] = {}  # host -> when its last progress line was printed

    # -- event sink ------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, e: Event) -> None:
        if e.kind is EventKind.RUN_STARTED:
            self._hosts = list(e.hosts)
            if self.live_mode:
                self._start_live()
        elif e.kind is EventKind.PHASE:
            self._phase = e.message
            if self.live_mode and self._live is None:  # the confirm prompt stopped it
                self._start_live()
            if not self.live_mode:
                what = "planning (changes nothing)" if e.message == "plan" else "applying"
                self._print(f"-- {what} on {len(e.hosts)} host(s)")
        elif e.kind is EventKind.STEP_STARTED:
            self._step_counts = {}
        elif e.kind in (EventKind.HOST_STARTED, EventKind.HOST_PROGRESS):
            self._current[e.host] = (e.step, time.monotonic(), e.message or "running")
            if e.kind is EventKind.HOST_STARTED:
                self._transfer.pop(e.host, None)
            elif e.transfer is not None:
                self._transfer[e.host] = e.transfer
            if not self.live_mode and e.kind is EventKind.HOST_PROGRESS and e.message:
                last = self._plain_last.get(e.host)
                if last is None or e.at - last >= PLAIN_PROGRESS_EVERY:
                    self._plain_last[e.host] = e.at
                    self._print(f"  {e.host}: {e.step}: {_one_line(e.message)}")
        elif e.kind is EventKind.HOST_FINISHED and e.result is not None:
            r = e.result
            self._step_counts[r.status] = self._step_counts.get(r.status, 0) + 1
            self._current[e.host] = (e.step, time.monotonic(), r.status.value)
            self._transfer.pop(e.host, None)
            self._plain_last.pop(e.host, None)
            if not self.live_mode and (self.verbose or r.status is not Status.OK):
                self._print(self._host_line(e.host, e.step, r))
            elif self.live_mode and r.status is not Status.OK:
                self._live.console.print(self._host_line(e.host, e.step, r), markup=False,
                                         highlight=False, style=_STYLE[r.status])
        elif e.kind is EventKind.STEP_FINISHED:
            counts = ", ".join(f"{n} {self._label(s)}" for s, n in self._step_counts.items() if n)
            line = f"[{e.step_index + 1}] {e.step}: {counts or 'no hosts'}"
            if self.live_mode:
                self._live.console.print(line, markup=False, highlight=False)
            else:
                self._print(line)
        elif e.kind is EventKind.RUN_INTERRUPTED:
            self._stop_live()
            self._print(f"{e.message}: in-flight commands ended; cleaning up (Ctrl-C again quits at once)")
        elif e.kind is EventKind.RUN_FINISHED:
            self._stop_live()

    def _label(self, status: Status, check: bool | None = None) -> str:
        """A status as a count label: under --check (the plan pass) CHANGED is 'would change'."""
        planning = self._phase == "plan" if check is None else check
        return "would change" if status is Status.CHANGED and planning else status.value

    def _host_line(self, host: str, step: str, r: StepResult) -> str:
        what = r.summary or r.message
        if r.failed and r.message and r.summary:
            what = f"{r.summary}: {r.message}"
        verb = "would change" if (r.status is Status.CHANGED and self._phase == "plan") else _MARK[r.status]
        return f"  {host}: {verb}: {_one_line(what)} ({r.duration:.2f}s)"

    def _print(self, text: str) -> None:
        self.out.write(mask(text) + "\n")
        self.out.flush()

    # -- live ------------------------------------------------------------------------------
    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(get_renderable=self._render, console=Console(file=self.out),
                          refresh_per_second=8, transient=True)
        self._live.start()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for host in self._hosts:
            step, since, status = self._current.get(host, ("", now, "waiting"))
            t = self._transfer.get(host)
            if t is not None and t.total > 0:  # a byte transfer: bar, bytes, rate, ETA
                table.add_row(host, step, ProgressBar(total=t.total, completed=min(t.done, t.total), width=30),
                              f"{transfer_text(t)}  {now - since:5.1f}s")
            else:
                table.add_row(host, step, status, f"{now - since:5.1f}s")
        return table

    def close(self) -> None:
        """Stop the live display (the end of the run, or before a prompt: the next phase restarts it)."""
        with self._lock:
            self._stop_live()

    # -- plan and recap --------------------------------------------------------------------
    def show_plan(self, report: RunReport) -> None:
        self._print(f"\nPlan: {report.changes} change(s)")
        for step in report.steps:
            for host, r in step.results.items():
                if r.status is Status.CHANGED:
                    self._print(f"  [{step.name}] {host}: {r.summary}")
                    if r.diff:
                        for line in r.diff.splitlines()[:40]:
                            self._print(f"      {line}")
                elif r.failed:
                    self._print(f"  [{step.name}] {host}: {_MARK[r.status]}: {_one_line(r.message)}")

    def recap(self, report: RunReport, log_dir: str | None = None) -> None:
        self._print("")
        title = "CHECK RECAP (nothing was changed)" if report.check else "RECAP"
        self._print(f"{title}: {report.playbook}, {len(report.hosts)} host(s) in {report.duration:.2f}s")
        width = max([len(h) for h in report.hosts] + [4])
        for rc in report.recaps():
            counts = "  ".join(f"{self._label(s, report.check).replace(' ', '-')}={rc.counts[s]}" for s in Status)
            state = "FAILED" if rc.failed else "ok"
            if rc.unreachable:
                state = "UNREACHABLE"
            if rc.first_failure is not None and rc.first_failure[1].message == INTERRUPTED:
                state = "INTERRUPTED"
            self._print(f"  {rc.host:<{width}}  {state:<11} {counts}  {rc.duration:6.2f}s")
        failures = [(rc.host, rc.first_failure) for rc in report.recaps() if rc.first_failure]
        # an unreachable host is the likeliest cause of its peers' failures: named first
        failures.sort(key=lambda f: f[1] is None or f[1][1].status is not Status.UNREACHABLE)
        if failures:
            self._print("")
        for host, (step, r) in ((h, f) for h, f in failures if f is not None):
            code = f" exit {r.exit_code}" if r.exit_code is not None else ""
            self._print(f"{_MARK[r.status]}: {host}: step {step!r}:{code} {_one_line(r.message, 200)}")
            for line in r.tail.splitlines()[-8:]:
                self._print(f"    | {line}")
            if r.hint:
                self._print(f"    hint: {r.hint}")
            if log_dir:
                self._print(f"    log: {log_dir}/{host}.log")
        for host, why in report.stopped.items():
            self._print(f"stopped: {host}: {why}")
        if report.host_state:
            self._print("")
            self._print("state of each host after the interrupt:")
            for host, state in report.host_state.items():
                self._print(f"  {host:<{width}}  {state}")
        if report.aborted:
            self._print(f"aborted: {report.aborted}")
        if log_dir:
            self._print(f"logs: {log_dir}")


PLAIN_WIDTH = 10_000  # not a terminal: never wrap (a path cut at column 80 is no longer a path)


def make_console(stderr: bool = False, file: TextIO | None = None, **kw: Any) -> Any:
    """A rich Console: on a terminal as rich sizes it; otherwise (logs, pipes, CI) lines are
    written whole, never wrapped at 80 columns mid-word."""
    from rich.console import Console

    stream = file or (sys.stderr if stderr else sys.stdout)
    if stream.isatty():
        return Console(file=stream, **kw)
    return Console(file=stream, soft_wrap=True, width=PLAIN_WIDTH, **kw)


def print_exec(out: TextIO, host: str, text: str, stream: str = "") -> None:
    for line in text.splitlines():
        out.write(f"{host}{stream} | {mask(line)}\n")


def host_width(hosts: Sequence[str]) -> int:
    return max([len(h) for h in hosts] + [1])
