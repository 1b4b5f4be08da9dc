"""The import-layering rule of docs/DESIGN.md ("Layers"), enforced with ast (relative imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "glm5cluster"

# layer -> internal layers it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "commands": {"errors"},
    "model": {"errors"},
    "topology": {"model", "errors"},
    "sglang": {"model", "topology", "errors"},
    "render": {"model", "topology", "sglang", "errors", "commands"},
    "facts": {"commands", "errors", "model"},
    "runtime": {"errors", "commands", "model", "topology", "sglang", "render", "facts"},
    "tasks": {"errors", "commands", "model", "topology", "sglang", "render", "facts", "runtime"},
    "connect": {"commands", "model", "errors"},
    "bench": {"errors", "commands", "model", "topology", "render", "runtime", "connect"},
    "engine": {"errors", "commands", "model", "topology", "sglang", "render", "facts", "runtime", "tasks",
               "connect", "bench"},
    "lab": {"errors", "commands", "model", "connect"},
    "cli": {"errors", "commands", "model", "topology", "sglang", "render", "facts", "runtime", "tasks",
            "connect", "engine", "lab", "bench"},
}
# redact (one masking function for everything printed) imports nothing and every layer may use it
ALLOWED["redact"] = set()
for _allowed in ALLOWED.values():
    _allowed.add("redact")
# third-party packages only some layers may touch
RESTRICTED_THIRD_PARTY = {
    "fabric": {"connect"},
    "paramiko": {"connect"},
    "invoke": {"connect"},
    "docker": {"connect", "lab"},
    "rich": {"cli", "lab"},
    "jinja2": {"render"},
    "click": {"cli"},
    "huggingface_hub": {"tasks", "engine", "cli", "lab"},
}


def layer_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    head = rel.parts[0]
    return head[:-3] if head.endswith(".py") else head


def imports_of(path: Path, pkg: Path = PKG) -> list[tuple[int, str]]:
    """(line, absolute module) of every import; relative ones resolved against the file's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            package = [pkg.name, *path.relative_to(pkg).parts[:-1]]
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.append((node.lineno, ".".join([*base, node.module])))
            else:  # from .. import x: each name may be a module
                found += [(node.lineno, ".".join([*base, a.name])) for a in node.names]
    return found


def python_files() -> list[Path]:
    return [p for p in PKG.rglob("*.py") if "sim" not in p.relative_to(PKG).parts]


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = {layer_of(p) for p in python_files()} - set(ALLOWED) - {"__init__", "__main__"}
    assert not unknown, f"modules outside the layer table: {unknown}; add them to architecture.md"


def test_no_lower_layer_imports_a_higher_one() -> None:
    bad = []
    for path in python_files():
        layer = layer_of(path)
        if layer in ("__init__", "__main__"):
            continue
        for line, mod in imports_of(path):
            parts = mod.split(".")
            if parts[0] == "glm5cluster" and len(parts) > 1:
                target = parts[1]
                if target != layer and target not in ALLOWED[layer] and target != "__init__":
                    bad.append(f"{path.relative_to(PKG)}:{line}: {layer} imports {target}")
            elif parts[0] in RESTRICTED_THIRD_PARTY and layer not in RESTRICTED_THIRD_PARTY[parts[0]]:
                bad.append(f"{path.relative_to(PKG)}:{line}: {layer} imports {parts[0]}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import paramiko\nfrom glm5cluster.cli import main\n")
    mods = [m for _, m in imports_of(sample, tmp_path)]
    assert mods == ["paramiko", "glm5cluster.cli"]
    assert "cli" not in ALLOWED["tasks"] and "tasks" not in RESTRICTED_THIRD_PARTY["paramiko"]


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    pkg = tmp_path / "glm5cluster"
    (pkg / "facts").mkdir(parents=True)
    sample = pkg / "facts" / "x.py"
    sample.write_text("from ..cli import main\nfrom . import base\nfrom .. import engine\nfrom .y import z\n")
    mods = [m for _, m in imports_of(sample, pkg)]
    assert mods == ["glm5cluster.cli", "glm5cluster.facts.base", "glm5cluster.engine", "glm5cluster.facts.y"]
    assert "cli" not in ALLOWED["facts"] and "engine" not in ALLOWED["facts"]
