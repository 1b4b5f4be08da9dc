"""`glm5cluster up` on a 4-node H100 lab (tp32 BF16, 8 GPUs per node) over real SSH, both
runtimes side by side on the same hosts (another cluster name and ports): each ends serving with
smoke tests passed, a re-run changes nothing, and `down` of one leaves the other serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import up_helpers as U

pytestmark = pytest.mark.lab

SUBNET = "172.28.94.0/24"
HEAD = "http://172.28.94.11"
CLUSTERS = [("lab-up4", "venv", 30000, 20000), ("up4-dk", "docker", 30100, 20100)]


@pytest.fixture(scope="module")
def lab(make_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    lab = make_lab("up4", hosts=4, gpu="H100", subnet=SUBNET, **U.LAB_HUB)
    lab.tmp = tmp_path_factory.mktemp("up4")
    lab.pb = U.playbook_args(lab.tmp)
    yield lab
    U.down_lab(lab)


def inv(lab: Any, which: tuple[str, str, int, int]) -> Path:
    cluster, runtime, port, dist = which
    return U.inventory(lab, Path(lab.tmp) / f"{cluster}.yaml", cluster=cluster, runtime=runtime,
                       http_port=port, dist_port=dist)


@pytest.mark.parametrize("which", CLUSTERS, ids=["venv", "docker"])
def test_up_tp32_serves_then_rerun_changes_nothing(lab: Any, which: tuple[str, str, int, int]) -> None:
    path = inv(lab, which)
    rc, out, _ = U.up(path, lab.pb)
    assert rc == 0, out
    U.serving_ok(out, f"{HEAD}:{which[2]}")
    assert "smoke test: 1 ok, 3 skipped" in out, out
    first = {h: U.identity(lab, h, which[0], which[1]) for h in lab.hosts}
    assert all(first.values()), first
    rc, out, secs = U.up(path, lab.pb)
    assert rc == 0, out
    U.changed_nothing(out)
    assert secs < 30, f"re-run took {secs:.1f}s"
    assert {h: U.identity(lab, h, which[0], which[1]) for h in lab.hosts} == first


def test_down_of_one_cluster_leaves_the_other_serving(lab: Any) -> None:
    venv, docker = (inv(lab, c) for c in CLUSTERS)
    rc, out, _ = U.cli("down", str(docker))
    assert rc == 0, out
    assert U.leftovers(lab, CLUSTERS[1][0], CLUSTERS[1][2]) == []
    assert U.status(venv)[0] == 0
    rc, out, _ = U.cli("down", str(venv))
    assert rc == 0, out
    assert U.leftovers(lab, CLUSTERS[0][0], CLUSTERS[0][2]) == []
