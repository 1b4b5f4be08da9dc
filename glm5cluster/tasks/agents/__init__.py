"""Programs that run on the nodes, as real files (linted and unit-tested like the rest).

Each is a standalone Python 3 script (standard library only, no glm5cluster import): the
weights agent (``weights_agent.py``, uploaded and run detached) and the short probes sent by
name with ``command(name, *args)`` (``python3 -c <source> args``; secrets only on stdin):

- ``health_probe``: node 0's ``/health`` code and ``/v1/models`` ids (readiness);
- ``smoke_test``: three chat completions (thinking, instruct, tool call);
- ``tcp_listen`` / ``tcp_connect``: the dist-init TCP test of preflight;
- ``weights_stamp``: the weights manifest stamp and which listed files are gone;
- ``nccl_probe``: the NCCL all-reduce gate (uploaded, run with the runtime's own python);
- ``runtime_env``: limits and versions inside the runtime that will run SGLang (preflight spec).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = ("health_probe", "smoke_test", "tcp_listen", "tcp_connect", "weights_stamp", "weights_agent",
            "nccl_probe", "runtime_env")


@cache
def source(name: str) -> str:
    """The source of node-side program ``name`` (one of ``PROGRAMS``)."""
    if name not in PROGRAMS:
        raise KeyError(f"no node-side program {name!r} (known: {', '.join(PROGRAMS)})")
    return (HERE / f"{name}.py").read_text()


def command(name: str, *args: str) -> list[str]:
    """argv running program ``name`` with ``args`` on a node's python3."""
    return ["python3", "-c", source(name), *args]
