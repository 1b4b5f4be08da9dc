"""Weights staging progress: a rich progress bar per node on a terminal (bytes, rate, ETA), and
plain, whole, throttled lines otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from glm5cluster.cli.display import PLAIN_PROGRESS_EVERY, Display, transfer_text
from glm5cluster.engine.events import Event, EventKind, Transfer
from glm5cluster.engine.procedures.weights import transfer_of

GIB = 1024**3


def test_agent_record_becomes_a_transfer() -> None:
    rec = {"phase": "fetch", "done": 12 * GIB, "total": 80 * GIB, "rate": 450 * 1024**2, "eta": 153.0}
    t = transfer_of(rec)
    assert t == Transfer(12 * GIB, 80 * GIB, 450 * 1024**2, 153.0)
    assert transfer_text(t) == "12.0 GiB/80.0 GiB 450.0 MiB/s ETA 2m33s"
    assert transfer_of({"phase": "listing"}) is None and transfer_of({"total": "x"}) is None
    assert transfer_of({"done": 1, "total": 2, "eta": float("inf")}).eta is None  # type: ignore[union-attr]


def test_terminal_shows_a_bar_per_transferring_node() -> None:
    d = Display(out=io.StringIO(), live=False)
    d._hosts = ["node-1", "node-2"]
    d(Event(EventKind.HOST_STARTED, 3, "weights", "node-1"))
    d(Event(EventKind.HOST_PROGRESS, 3, "weights", "node-1", "weights fetch",
            transfer=Transfer(40 * GIB, 80 * GIB, 100 * 1024**2, 410.0)))
    d(Event(EventKind.HOST_STARTED, 3, "weights", "node-2"))
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(d._render())
    lines = out.getvalue().splitlines()
    assert "40.0 GiB/80.0 GiB 100.0 MiB/s ETA 6m50s" in lines[0] and "━" in lines[0]
    assert "running" in lines[1] and "GiB" not in lines[1]


def test_plain_progress_lines_are_whole_and_throttled() -> None:
    buf = io.StringIO()
    d = Display(out=buf, live=False)
    msg = "weights fetch 1.0 GiB/80.0 GiB (1%) 10.0 MiB/s ETA 2h files 1/200 /data/models/" + "x" * 120
    for i in range(5):
        d(Event(EventKind.HOST_PROGRESS, 0, "weights", "node-1", msg, at=100.0 + i))
    d(Event(EventKind.HOST_PROGRESS, 0, "weights", "node-1", "later", at=100.0 + PLAIN_PROGRESS_EVERY))
    assert buf.getvalue().splitlines() == [f"  node-1: weights: {msg}", "  node-1: weights: later"]
