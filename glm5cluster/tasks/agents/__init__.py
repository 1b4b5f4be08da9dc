"""Programs that run on the nodes, as real files (linted and unit-tested like the rest).

Each is a standalone Python 3 script (standard library only, no glm5cluster import): the
weights agent (uploaded and run detached; built from the modules of ``weights/``, concatenated
in ``weights.PARTS`` order by ``build``) and the short probes sent by name with
``command(name, *args)`` (``python3 -c <source> args``; secrets only on stdin):

- ``health_probe``: node 0's ``/health`` code and ``/v1/models`` ids (readiness);
- ``smoke_test``: three chat completions (thinking, instruct, tool call);
- ``tcp_listen`` / ``tcp_connect``: the dist-init TCP test of preflight;
- ``weights_stamp``: the weights manifest stamp and which listed files are gone;
- ``nccl_probe``: the NCCL all-reduce gate (uploaded, run with the runtime's own python);
- ``runtime_env``: limits and versions inside the runtime that will run SGLang (preflight spec).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROGRAMS = ("health_probe", "smoke_test", "tcp_listen", "tcp_connect", "weights_stamp", "weights_agent",
            "nccl_probe", "runtime_env")


BUILT = {"weights_agent": "weights"}  # programs built from a package of modules


@cache
def source(name: str) -> str:
    """The source of node-side program ``name`` (one of ``PROGRAMS``)."""
    if name not in PROGRAMS:
        raise KeyError(f"no node-side program {name!r} (known: {', '.join(PROGRAMS)})")
    if name in BUILT:
        return build(BUILT[name])
    return (HERE / f"{name}.py").read_text()


def build(package: str, root: Path = HERE) -> str:
    """One standalone script from the modules of ``package`` (its ``PARTS``, in order): the
    package's docstring, every module-level import once at the top, then each module's body
    without its docstring, its ``__future__`` import and its imports of sibling modules (the
    names they bring are defined earlier in the same file), and a ``__main__`` guard calling
    ``main(sys.argv)``. A name defined at the top level of two parts is refused (one would
    silently replace the other)."""
    import ast  # only when a program is built (not on the controller's start-up path)

    pkg = root / package
    init = ast.parse((pkg / "__init__.py").read_text())
    doc = ast.get_docstring(init, clean=False) or ""
    parts = next(ast.literal_eval(n.value) for n in init.body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PARTS")
    imports: list[str] = []
    bodies: list[str] = []
    defined: dict[str, str] = {}
    for part in parts:
        text = (pkg / f"{part}.py").read_text()
        lines = text.splitlines()
        drop: set[int] = set()
        for i, node in enumerate(ast.parse(text).body):
            span = range(node.lineno - 1, node.end_lineno or node.lineno)
            if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                drop.update(span)  # the module docstring
            elif isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "__future__"):
                drop.update(span)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                stmt = "\n".join(lines[j] for j in span)
                if stmt not in imports:
                    imports.append(stmt)
                drop.update(span)
            else:
                for name in _names(node):
                    if name in defined:
                        raise ValueError(f"{package}: {name} is defined in {defined[name]} and {part}")
                    defined[name] = part
        body = "\n".join(ln for j, ln in enumerate(lines) if j not in drop).strip("\n")
        bodies.append(f"# ---- {package}/{part}.py " + "-" * max(0, 80 - len(package) - len(part)) + "\n\n" + body)
    head = f'"""{doc}"""\n\nfrom __future__ import annotations\n\n' + "\n".join(imports)
    return head + "\n\n\n" + "\n\n\n".join(bodies) + '\n\n\nif __name__ == "__main__":\n    sys.exit(main(sys.argv))\n'


def _names(node: Any) -> list[str]:
    import ast

    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def command(name: str, *args: str) -> list[str]:
    """argv running program ``name`` with ``args`` on a node's python3."""
    return ["python3", "-c", source(name), *args]
