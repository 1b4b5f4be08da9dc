"""Read YAML text keeping where every value was written: a field path -> line map.

YAML syntax errors and duplicate keys (which YAML would silently resolve to the last one)
become `Problem`s with their line. Paths are tuples of mapping keys (str) and list indexes
(int); `format_path` writes them as ``hosts[2].cluster_address``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml

from glm5cluster.errors import Problem

PathT = tuple[str | int, ...]
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_MAPPED_NODES = 200_000  # aliases can make the tree explode; stop mapping lines past this
MAX_EXPANDED_VALUES = 100_000  # an inventory has hundreds of values; aliases may not expand past this


def format_path(path: PathT) -> str:
    out = ""
    for comp in path:
        if isinstance(comp, int):
            out += f"[{comp}]"
        elif _PLAIN_KEY.match(comp):
            out += f".{comp}" if out else comp
        else:
            out += f"[{json.dumps(comp)}]"
    return out


_LAST_COMP = re.compile(r'(\.[A-Za-z0-9_-]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$')


def parent_path(path: str) -> str | None:
    """``hosts[2].gpu.kind`` -> ``hosts[2].gpu``; ``cluster`` -> ``""``; ``""`` -> None."""
    if not path:
        return None
    m = _LAST_COMP.search(path)
    return path[: m.start()] if m else ""


@dataclass
class Source:
    """Parsed YAML: the plain data, where each path was written, and any problems found."""

    file: str
    data: object = None
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: str) -> int | None:
        """The line of `path`, or of its nearest written ancestor (for a missing field)."""
        p: str | None = path
        while p is not None:
            if p in self.lines:
                return self.lines[p]
            p = parent_path(p)
        return None


def _syntax_problem(file: str, err: yaml.YAMLError) -> Problem:
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    if mark is None or "end of stream" in what:  # point at where the unclosed thing began
        mark = getattr(err, "context_mark", None) or mark
    line = mark.line + 1 if mark is not None else None
    context = getattr(err, "context", None)
    message = f"YAML syntax error: {what}" + (f" ({context})" if context else "")
    if "expected a single document" in str(context):
        message = "YAML syntax error: the file holds more than one YAML document (a second `---`)"
    hint = "check the indentation and quoting around this line"
    if "\t" in what or "'\\t'" in what:
        hint = "YAML indentation must use spaces, not tabs"
    elif "could not determine a constructor" in what:
        hint = "YAML tags (!something) are not allowed in an inventory"
    return Problem(file, line, "", message.replace("\n", " "), hint)


def _key_text(node: yaml.Node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _find_duplicates(file: str, root: yaml.Node) -> list[Problem]:
    problems: list[Problem] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, PathT]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in node.value:
                key = _key_text(k)
                if key is None or key == "<<":
                    continue
                line = k.start_mark.line + 1
                if key in first:
                    problems.append(Problem(
                        file, line, format_path(path + (key,)),
                        f"duplicate key `{key}` (first written on line {first[key]})",
                        "YAML keeps only the last one; remove or merge the duplicate",
                    ))
                else:
                    first[key] = line
                stack.append((v, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + (i,)) for i, item in enumerate(node.value))
    return sorted(problems, key=lambda p: p.line or 0)


def _map_lines(root: yaml.Node) -> dict[str, int]:
    lines: dict[str, int] = {"": root.start_mark.line + 1}
    stack: list[tuple[yaml.Node, PathT]] = [(root, ())]
    while stack and len(lines) < _MAX_MAPPED_NODES:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = _key_text(k)
                if key is None:
                    continue
                sub = path + (key,)
                lines[format_path(sub)] = k.start_mark.line + 1  # the last one wins, as in YAML
                stack.append((v, sub))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = path + (i,)
                lines[format_path(sub)] = item.start_mark.line + 1
                stack.append((item, sub))
    return lines


def expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_VALUES) -> int | None:
    """How many values the document has once every alias is expanded (counted without expanding,
    memoised per node). None: an alias refers to a node that contains it (endless)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(k)] for k in kids))
            continue
        if key in sizes:
            continue
        if key in on_path:
            return None
        on_path.add(key)
        stack.append((node, True))
        for k in _children(node):
            if id(k) in on_path:
                return None
            if id(k) not in sizes:
                stack.append((k, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _alias_problem(file: str, root: yaml.Node) -> Problem | None:
    size = expanded_size(root)
    if size is None:
        return Problem(file, None, "", "a YAML alias refers to a value that contains it (endless nesting)",
                       "remove the recursive alias (*name inside the &name it points to)")
    if size > MAX_EXPANDED_VALUES:
        return Problem(file, None, "", f"YAML aliases expand this file to more than {MAX_EXPANDED_VALUES} "
                       "values, far beyond any inventory (an alias bomb?); refused without expanding it",
                       "write the values out, or use fewer nested aliases (*name)")
    return None


def parse_yaml(text: str, file: str) -> Source:
    """Parse one YAML document. Problems (syntax, duplicates, alias bombs) are collected, never raised."""
    src = Source(file)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader checks the characters here already
        root = loader.get_single_node()
        if root is None:
            src.problems.append(Problem(file, 1, "", "the file is empty", "start from an example in inventory/"))
            return src
        bomb = _alias_problem(file, root)
        if bomb is not None:
            src.problems.append(bomb)
            return src
        src.problems.extend(_find_duplicates(file, root))
        src.data = loader.construct_document(root)  # flattens `<<` merges in place
        src.lines = _map_lines(root)
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (control characters)
        line = text[: max(err.position, 0)].count("\n") + 1
        src.problems.append(Problem(file, line, "", f"YAML syntax error: unacceptable character "
                                    f"#x{err.character if isinstance(err.character, int) else ord(err.character):04x} "
                                    "(control characters are not allowed)",
                                    "remove it; only printable characters, tab and newline are allowed"))
    except yaml.YAMLError as err:
        src.problems.append(_syntax_problem(file, err))
    except RecursionError:
        src.problems.append(Problem(file, None, "", "the YAML nests too deeply", "an inventory is a few levels deep"))
    finally:
        if loader is not None:
            loader.dispose()
    return src
