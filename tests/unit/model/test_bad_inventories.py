"""Table-driven bad inventories: each data file in bad/ names the error it must produce.

A file marks its offending line with a trailing `# <- error: FRAGMENT` comment, or (where a
comment would change how the YAML parses) says `# error-at: LINE: FRAGMENT` on its first line.
Every case must exit 2 with one-line errors `error: file:line: ...` and never a traceback.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from glm5cluster.cli.main import main

HERE = Path(__file__).resolve().parent
BAD = HERE / "bad"
ROOT = HERE.parents[2]
CLI = ROOT / ".venv" / "bin" / "glm5cluster"
MARK = re.compile(r"#\s*<-\s*error:\s*(.+?)\s*$")
HEADER = re.compile(r"^#\s*error-at:\s*(\d+):\s*(.+?)\s*$")
# run through the installed console script (a real process) as well as in-process
SUBPROCESS_CASES = {
    "yaml-syntax-unclosed-bracket", "yaml-tab-indent", "duplicate-key-top", "unknown-key-top",
    "missing-hosts", "inline-hf-token", "fp8-on-amd", "hostile-host-name", "duplicate-ssh-address",
    "bad-ipv6-cluster-address",
}


def expectations(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    found = []
    if lines and (m := HEADER.match(lines[0])):
        found.append((int(m.group(1)), m.group(2)))
    for n, line in enumerate(lines, start=1):
        if (m := MARK.search(line)) and not HEADER.match(line):
            found.append((n, m.group(1)))
    return found


CASES = sorted(BAD.glob("*.yaml"))


def test_enough_distinct_cases() -> None:
    assert len(CASES) >= 30
    for case in CASES:
        assert expectations(case), f"{case.name} names no expected error"


def check_output(case: Path, shown: str, rc: int, stderr: str) -> None:
    assert rc == 2, stderr
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, "no error printed"
    for ln in lines:
        assert ln.startswith(f"error: {shown}:"), f"not a one-line located error: {ln!r}"
    for line_no, fragment in expectations(case):
        prefix = f"error: {shown}:{line_no}: "
        hits = [ln for ln in lines if ln.startswith(prefix) and fragment in ln]
        assert hits, f"expected {prefix}...{fragment!r} in:\n{stderr}"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_inventory_in_process(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["validate", str(case)])
    out = capsys.readouterr()
    assert out.out == ""
    check_output(case, str(case), rc, out.err)


@pytest.mark.parametrize("name", sorted(SUBPROCESS_CASES))
def test_bad_inventory_real_cli(name: str) -> None:
    case = BAD / f"{name}.yaml"
    rel = case.relative_to(ROOT)
    exe = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "glm5cluster"]
    proc = subprocess.run([*exe, "validate", str(rel)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout == ""
    check_output(case, str(rel), proc.returncode, proc.stderr)
