"""`preflight`'s checks wired end to end on a real shell: both lab "nodes" are this machine
(LocalConnection), so the fact batches, parsers and checks run for real; the duplicate host name
and the missing venv are what this machine really looks like to them."""

from __future__ import annotations

from pathlib import Path

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.preflight_cmd import run_checks
from glm5cluster.connect.local import LocalConnection
from glm5cluster.connect.pool import ConnectionPool

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab.yaml"


def test_fabric_and_spec_run_on_a_real_shell() -> None:
    checked = load_and_check(LAB)
    nodes = list(checked.loaded.nodes)
    inv = checked.loaded.inventory
    inv = inv.model_copy(update={"serving": inv.serving.model_copy(update={"venv_path": "/nonexistent/venv"})})
    pool = ConnectionPool(nodes, factory=lambda n: LocalConnection(n.name))
    rows = {(r.check, r.host): r.result for r in run_checks(inv, nodes, checked.topology, pool,
                                                            ["fabric", "spec"], None)}
    assert set(rows) == {(c, h) for c in ("fabric", "spec") for h in ("node-1", "node-2")}
    assert "is also the host name of node-1" in rows[("fabric", "node-2")].message
    for h in ("node-1", "node-2"):
        assert "could not run the runtime's python for the venv runtime" in rows[("spec", h)].message
