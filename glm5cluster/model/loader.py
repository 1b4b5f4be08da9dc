"""Load an inventory file into typed records, reporting every problem in it at once.

`load_inventory(path)` returns a `LoadedInventory` or raises `InputProblems`: YAML syntax,
duplicate keys, wrong types, unknown keys, missing fields, bad values, inline secrets and the
whole-file checks of `model.checks`, each with its file, line and field path. Checks that
need the hardware catalog (tp, replicas, FP8 on AMD) run after this, in the topology; their
`PlanError.path` is turned into a line with `LoadedInventory.line_of`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from glm5cluster.errors import InputProblems, Problem
from glm5cluster.model.checks import Finding, check_inventory, find_inline_secrets
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.nodes import Node, resolve_nodes
from glm5cluster.model.problems import describe_input, translate
from glm5cluster.model.yaml_source import PathT, Source, format_path, parse_yaml

TOP_KEYS = ", ".join(Inventory.model_fields)


@dataclass(frozen=True)
class LoadedInventory:
    """A valid inventory, its nodes with defaults applied, and where each field was written."""

    inventory: Inventory
    path: str  # as the user gave it (used in messages)
    base_dir: str  # absolute folder of the file: relative SSH paths resolve against it
    nodes: list[Node]
    lines: Mapping[str, int] = field(default_factory=dict, repr=False)
    warnings: list[Problem] = field(default_factory=list)

    def line_of(self, path: str) -> int | None:
        """Line of a field path such as ``hosts[2].cluster_address`` (or of its nearest ancestor)."""
        return Source(self.path, lines=dict(self.lines)).line_of(path)

    def problem(self, path: str, message: str, hint: str | None = None) -> Problem:
        """A problem about field `path` of this file, with its line."""
        return Problem(self.path, self.line_of(path), path, one_line(message) or "", one_line(hint))


def one_line(text: str | None) -> str | None:
    if text is None:
        return None
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _under(path: PathT, roots: Iterable[PathT]) -> bool:
    return any(path[: len(r)] == r for r in roots)


def _problem(src: Source, path: PathT, message: str, hint: str | None) -> Problem:
    text = format_path(path)
    return Problem(src.file, src.line_of(text), text, one_line(message) or "", one_line(hint))


def _validate(src: Source) -> tuple[Inventory | None, list[Problem], list[Problem]]:
    """-> (inventory or None, errors, warnings) for parsed data."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    data = src.data
    if not isinstance(data, dict):
        errors.append(Problem(src.file, src.line_of(""), "",
                              f"the inventory must be a mapping of keys ({TOP_KEYS}), got {describe_input(data)}",
                              "start from an example in inventory/"))
        return None, errors, warnings
    secrets = list(find_inline_secrets(data))
    errors += [_problem(src, f.path, f.message, f.hint) for f in secrets]
    secret_paths = [f.path for f in secrets]
    inventory: Inventory | None = None
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path, message, hint = translate(err, data)
            if not _under(path, secret_paths):
                errors.append(_problem(src, path, message, hint))
    if inventory is not None:
        findings: list[Finding] = list(check_inventory(inventory))
        errors += [_problem(src, f.path, f.message, f.hint) for f in findings if not f.warning]
        warnings += [_problem(src, f.path, f.message, f.hint) for f in findings if f.warning]
    return inventory, errors, warnings


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in sorted(problems, key=lambda p: p.line or 0):
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def load_inventory(path: str | os.PathLike[str]) -> LoadedInventory:
    """Read, parse and validate an inventory file. Raises `InputProblems` listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputProblems([Problem(file, None, "", "no such file", "check the path to the inventory")]) from None
    except IsADirectoryError:
        raise InputProblems([Problem(file, None, "", "is a folder, not a file", "name an inventory .yaml file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputProblems([Problem(file, None, "", f"cannot read the inventory: {reason}", None)]) from None
    src = parse_yaml(text, file)
    errors = list(src.problems)
    inventory, more, warnings = (None, [], []) if (errors and src.data is None) else _validate(src)
    errors += more
    if errors or inventory is None:
        raise InputProblems(_unique(errors))
    base_dir = os.path.dirname(os.path.abspath(file))
    return LoadedInventory(
        inventory=inventory,
        path=file,
        base_dir=base_dir,
        nodes=resolve_nodes(inventory, base_dir),
        lines=dict(src.lines),
        warnings=_unique(warnings),
    )
