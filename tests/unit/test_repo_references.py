"""The repository stands alone: no file points outside it (a sibling folder of notes, issue
numbers, numbered house rules); facts a user or developer needs are copied into the repo."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|/work/shared|\bissue [0-9]+\b|\bhouse rule [0-9]+\b", re.IGNORECASE)


def tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return [ROOT / p for p in out.splitlines()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        return [p for p in ROOT.rglob("*") if p.is_file() and not {".venv", ".git", "build"} & set(p.parts)]


def test_no_file_points_outside_the_repo() -> None:
    bad = []
    for path in tracked():
        if path == Path(__file__) or not path.is_file() or path.suffix in (".gz", ".whl", ".tar", ".asc"):
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not bad, "references outside the repository:\n" + "\n".join(bad)
