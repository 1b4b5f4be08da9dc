"""`glm5cluster up` on a 4-node H100 lab (tp32 BF16, 8 GPUs per node), venv runtime, over real
SSH: serves with smoke tests passed; a re-run changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import up_helpers as U

pytestmark = pytest.mark.lab


def test_up_tp32_serves_then_rerun_changes_nothing(make_lab: Any, tmp_path: Any) -> None:
    lab = make_lab("up4", hosts=4, gpu="H100", subnet="172.28.94.0/24")
    wheel, repo = U.build_assets(tmp_path)
    U.provision(lab, wheel, repo)
    inv = U.inventory(lab, tmp_path, "tp32")
    rc, out, _ = U.up(inv)
    assert rc == 0, out
    assert "GLM-5 is serving: model id zai-org/GLM-5" in out
    assert "[6] smoke test: 1 ok, 3 skipped" in out, out
    rc, out, secs = U.up(inv)
    assert rc == 0, out
    assert "changed=1" not in out, out
    assert secs < 20, f"re-run took {secs:.1f}s"
