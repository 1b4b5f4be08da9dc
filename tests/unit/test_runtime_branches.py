"""Nothing outside the runtime seam branches on the runtime kind: the seam (``glm5cluster/runtime/``)
owns every difference between the venv and the docker runtime (names, image rule, limits,
logs, versions...); callers ask it through ``Runtime``'s methods and properties.

A comparison against a runtime kind (``"venv"``/``"docker"``/``"unit"``/``"container"``,
``Runtime.VENV``/``Runtime.DOCKER``) or an ``isinstance`` test on a runtime class anywhere else
fails this test. Exempt: the seam itself, the inventory schema (it defines the field and its
defaults) and the lab (it builds the rehearsal hosts, not the product's runtime decisions).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "glm5cluster"
EXEMPT = ("runtime/", "model/", "lab/")
KIND_NAMES = {"venv", "docker", "unit", "container"}
KIND_MEMBERS = {"VENV", "DOCKER"}
RUNTIME_CLASSES = {"UnitRuntime", "ContainerRuntime"}


def _is_kind(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value in KIND_NAMES
    return isinstance(node, ast.Attribute) and node.attr in KIND_MEMBERS


def branches(tree: ast.AST) -> list[int]:
    """Lines comparing something with a runtime kind, or testing a runtime's class."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(_is_kind(x) for x in [node.left, *node.comparators]):
            out.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and len(node.args) == 2:
            cls = node.args[1]
            names = {e.id for e in (cls.elts if isinstance(cls, ast.Tuple) else [cls]) if isinstance(e, ast.Name)}
            if names & RUNTIME_CLASSES:
                out.append(node.lineno)
    return sorted(out)


def test_no_runtime_kind_branch_outside_the_seam() -> None:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith(EXEMPT):
            continue
        found += [f"glm5cluster/{rel}:{line}" for line in branches(ast.parse(path.read_text(), str(path)))]
    assert not found, "branches on the runtime kind outside glm5cluster/runtime/ (ask the seam instead):\n" + \
        "\n".join(found)


def test_the_check_sees_each_shape_of_branch() -> None:
    src = """
if inv.serving.runtime is Runtime.DOCKER: pass
if rt.kind == "unit": pass
x = "a" if it.mode != "venv" else "b"
ok = isinstance(rt, (UnitRuntime, int))
if rt.needs_container_engine: pass
y = f"{rt.mode} runtime"
"""
    assert branches(ast.parse(src)) == [2, 3, 4, 5]
