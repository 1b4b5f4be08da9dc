"""Every message, hint and text the package writes points at something the user has: a file
of this repository (README.md, inventory/README.md, docs/...), never a notes file outside it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "glm5cluster"
MD = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _exists(name: str) -> bool:
    if (ROOT / name).is_file():
        return True
    return any((ROOT / d / name).is_file() for d in ("docs", "inventory", "glm5cluster/engine"))


def test_strings_cite_only_files_the_user_has() -> None:
    bad = []
    for path in PKG.rglob("*.py"):
        if "sim" in path.relative_to(PKG).parts:
            continue
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                for ref in MD.findall(node.value):
                    if not _exists(ref):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ref}")
    assert not bad, "strings cite files that are not in the repository:\n" + "\n".join(bad)
