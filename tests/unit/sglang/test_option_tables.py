"""Every shipped option table was produced by scripts/dump-option-tables from a released wheel.

The script downloads wheels, so CI does not run it; these checks tie each shipped table to the
script as it is now (its sha256 is in every header: edit the script, re-run it) and to the wheel
it read (file name and sha256), and make sure nothing else sits among the tables.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import pytest

from glm5cluster.sglang import supported_releases, table_document

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "glm5cluster" / "sglang" / "data"
SCRIPT = ROOT / "scripts" / "dump-option-tables"
RELEASES = json.loads((DATA / "releases.json").read_text())["releases"]


def test_data_holds_exactly_one_table_per_release():
    newest = RELEASES[-1]
    expected = {"releases.json", f"server-options-{newest}.json"}
    expected |= {f"server-options-{v}.json.gz" for v in RELEASES[:-1]}
    assert {p.name for p in DATA.iterdir()} == expected  # no hand-made or derived table among them
    assert RELEASES == list(supported_releases())


@pytest.mark.parametrize("version", RELEASES)
def test_table_header_names_the_script_and_the_wheel(version):
    doc = table_document(version)
    src = doc["source"]
    assert doc["package"] == "sglang" and doc["version"] == version
    assert doc["parser"] == "sglang.srt.server_args.ServerArgs.add_cli_args"
    assert re.fullmatch(rf"sglang-{re.escape(version)}-(py3-none-any|cp311-cp311-manylinux_[0-9_]+_x86_64)\.whl",
                        src["wheel"]), src["wheel"]
    assert re.fullmatch(r"[0-9a-f]{64}", src["sha256"])
    assert src["produced_by"] == "scripts/dump-option-tables"
    assert src["script_sha256"] == hashlib.sha256(SCRIPT.read_bytes()).hexdigest(), \
        "the table predates the current script: run scripts/dump-option-tables"
    assert src["installed_with"] == "pip install --no-deps"
    assert "torch" in src["stubbed_modules_touched"]  # recorded honestly: torch was stubbed
    flags = [f for o in doc["options"] for f in o["flags"]]
    assert len(flags) == len(set(flags)) and "--tp-size" in flags and "--model-path" in flags


def test_wheel_hashes_differ_per_release():
    shas = [table_document(v)["source"]["sha256"] for v in RELEASES]
    assert len(set(shas)) == len(shas)


def test_older_tables_are_deterministic_gzip():
    for v in RELEASES[:-1]:
        raw = (DATA / f"server-options-{v}.json.gz").read_bytes()
        assert raw[4:8] == b"\0\0\0\0", v  # mtime 0: re-running the script changes nothing
        assert json.loads(gzip.decompress(raw)) == table_document(v)
