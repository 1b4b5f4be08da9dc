"""Every example inventory rendered for every supported release passes that release's real table.

The one exception is a real one, found by the tables: the cookbook's Blackwell FP8 backends
(``--nsa-*-backend trtllm``) are not choices of 0.5.8 / 0.5.8.post1 (0.5.9 added them), so
those argvs fail their table and ``plan`` refuses them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.sglang import build_args, check_argv, profile_for, supported_releases, table_for

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p.stem for p in (ROOT / "inventory").glob("*.yaml"))
NO_TRTLLM_DSA = {"0.5.8", "0.5.8.post1"}


def rendered(name: str, version: str) -> dict[str, list[str]]:
    checked = load_and_check(ROOT / "inventory" / f"{name}.yaml")
    inv, topo = checked.loaded.inventory, checked.topology
    data = inv.model_dump(mode="json")
    data["serving"]["sglang_version"] = version
    inv = type(inv).model_validate(data)
    return {f"{r.node.name}/{rep.index}": build_args(inv, topo, rep, r) for rep in topo.replicas for r in rep.ranks}


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_release_renders_an_argv_its_table_accepts(name):
    assert EXAMPLES, "no example inventories found"
    for version in supported_releases():
        table, prof = table_for(version), profile_for(version)
        for node, argv in rendered(name, version).items():
            report = check_argv(argv, table)
            trtllm = [i for i, a in enumerate(argv) if a == "trtllm" and argv[i - 1].endswith("-decode-backend")]
            if version in NO_TRTLLM_DSA and trtllm:
                assert report.errors and all("invalid choice 'trtllm'" in e for e in report.errors), report
                continue
            assert report.ok, (name, version, node, report.errors)
            assert not report.warnings, (name, version, node, report.warnings)  # no deprecated spelling
            if "--attention-backend" in argv:
                assert argv[argv.index("--attention-backend") + 1] == prof.attention_backend_value


def test_the_exception_is_real_and_narrow():
    hit = {v for v in supported_releases() for name in EXAMPLES
           for argv in rendered(name, v).values() if not check_argv(argv, table_for(v)).ok}
    assert hit == NO_TRTLLM_DSA
