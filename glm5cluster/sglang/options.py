"""Option tables and the argv validator.

``data/`` holds the real option table of every supported SGLang release (``releases.json``:
0.5.8, the first release that loads GLM-5, to 0.5.23), dumped by ``scripts/dump-option-tables``
from ``ServerArgs.add_cli_args`` of each released wheel: flag spellings, whether each takes a
value, type, default, choices, deprecation. The newest release ships as plain JSON, the others
gzipped; each names the wheel (file and sha256) it was read from. Nothing is derived or guessed:
a version without a table is refused.

The validator is stricter than argparse: prefix abbreviations are refused (``--tp``), as is a
value that looks like a flag.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from glm5cluster.errors import PlanError

FIRST_GLM5_RELEASE = (0, 5, 8)


@dataclass(frozen=True)
class OptionSpec:
    flags: tuple[str, ...]
    dest: str
    nargs: int | str | None  # None: exactly one value; 0: a switch; "+", "*", "?" or a count
    takes_value: bool
    choices: tuple[str, ...] | None
    type: str | None
    deprecated: bool


@dataclass(frozen=True)
class OptionTable:
    name: str
    options: tuple[OptionSpec, ...]
    by_flag: Mapping[str, OptionSpec] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def of(cls, name: str, options: Sequence[OptionSpec]) -> OptionTable:
        return cls(name, tuple(options), {f: o for o in options for f in o.flags})

    def lookup(self, flag: str) -> OptionSpec | None:
        return self.by_flag.get(flag)

    def offers(self, flag: str, value: str | None = None) -> bool:
        """Whether ``flag`` exists and is not deprecated (and, given ``value``, accepts it)."""
        spec = self.by_flag.get(flag)
        if spec is None or spec.deprecated:
            return False
        return value is None or spec.choices is None or value in spec.choices


@dataclass(frozen=True)
class ArgvReport:
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def _spec(raw: Mapping[str, object]) -> OptionSpec:
    choices = raw.get("choices")
    nargs = raw.get("nargs")
    return OptionSpec(
        flags=tuple(str(f) for f in raw["flags"]),  # type: ignore[attr-defined]
        dest=str(raw["dest"]),
        nargs=nargs if isinstance(nargs, int | str) else None,
        takes_value=bool(raw["takes_value"]),
        choices=tuple(str(c) for c in choices) if isinstance(choices, list) else None,
        type=str(raw["type"]) if raw.get("type") is not None else None,
        deprecated=bool(raw.get("deprecated")),
    )


def _data() -> Traversable:
    return resources.files("glm5cluster.sglang").joinpath("data")


@cache
def supported_releases() -> tuple[str, ...]:
    """The SGLang releases with a shipped option table, oldest first."""
    return tuple(json.loads(_data().joinpath("releases.json").read_text())["releases"])


def require_release(version: str) -> str:
    """``version`` if a table ships for it, else a PlanError that lists the supported ones."""
    releases = supported_releases()
    if version in releases:
        return version
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
    old = m is not None and tuple(int(x) for x in m.groups()) < FIRST_GLM5_RELEASE
    why = (" predates GLM-5 support (it cannot load model type glm_moe_dsa)" if old
           else " has no option table here, so its launch flags cannot be checked")
    raise PlanError(f"SGLang {version}{why}",
                    hint=f"use one of the supported releases: {', '.join(releases)} "
                         f"({releases[-1]} recommended)",
                    path="serving.sglang_version")


@cache
def table_document(version: str) -> dict[str, Any]:
    """The shipped JSON document of ``version``'s table (header + options), as written by
    ``scripts/dump-option-tables``."""
    require_release(version)
    plain = _data().joinpath(f"server-options-{version}.json")
    if plain.is_file():
        return dict(json.loads(plain.read_text()))
    return dict(json.loads(gzip.decompress(_data().joinpath(f"server-options-{version}.json.gz").read_bytes())))


@cache
def load_table(version: str = "0.5.23") -> OptionTable:
    doc = table_document(version)
    return OptionTable.of(f"sglang {doc['version']}", [_spec(o) for o in doc["options"]])


def table_for(version: str) -> OptionTable:
    """The real option table of release ``version`` (PlanError for an unsupported one)."""
    return load_table(require_release(version))


_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")
_HUMAN_INT = re.compile(r"^\d+(\.\d+)?[kKmMgGtT]?$")


def _looks_like_flag(arg: str) -> bool:
    return arg.startswith("-") and len(arg) > 1 and not _NEGATIVE.match(arg)


def _type_problem(kind: str | None, value: str) -> str | None:
    try:
        if kind == "int":
            int(value)
        elif kind == "float":
            float(value)
        elif kind == "human_readable_int":
            if not _HUMAN_INT.match(value.strip()):
                return "is not a number (e.g. 131072 or 128k)"
        elif kind == "loads":
            json.loads(value)
        elif kind == "json_list_type":
            if not isinstance(json.loads(value), list):
                return "is not a JSON list"
    except ValueError:
        return f"does not parse as {kind}"
    return None


def releases_offering(flag: str, value: str | None = None) -> list[str]:
    """The supported releases whose table has ``flag`` (accepting ``value``, when given)."""
    out = []
    for v in supported_releases():
        spec = load_table(v).lookup(flag)
        if spec is not None and (value is None or spec.choices is None or value in spec.choices):
            out.append(v)
    return out


def _elsewhere(table: OptionTable, flag: str, value: str | None = None) -> str:
    """``; SGLang 0.5.9 .. 0.5.12.post1 offer it`` when other supported releases do."""
    found = [v for v in releases_offering(flag, value) if table.name != f"sglang {v}"]
    if not found:
        return ""
    span = found[0] if len(found) == 1 else f"{found[0]} .. {found[-1]}"
    return f"; SGLang {span} {'offers' if len(found) == 1 else 'offer'} it (serving.sglang_version)"


def _check_value(flag: str, spec: OptionSpec, value: str, errors: list[str], table: OptionTable) -> None:
    if spec.choices is not None and value not in spec.choices:
        shown = ", ".join(spec.choices[:12]) + (" ..." if len(spec.choices) > 12 else "")
        errors.append(f"{flag}: invalid choice {value!r} (choose from {shown}){_elsewhere(table, flag, value)}")
        return
    problem = _type_problem(spec.type, value)
    if problem:
        errors.append(f"{flag}: value {value!r} {problem}")


def _count_range(spec: OptionSpec) -> tuple[int, int]:
    n = spec.nargs
    if n is None:
        return (1, 1) if spec.takes_value else (0, 0)
    if isinstance(n, int):
        return n, n
    return {"+": (1, 10**6), "*": (0, 10**6), "?": (0, 1)}.get(n, (1, 1))


def check_argv(argv: Sequence[str], table: OptionTable) -> ArgvReport:
    """Check an argv (the arguments after the entry point) against an option table."""
    errors: list[str] = []
    warnings: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not _looks_like_flag(arg):
            errors.append(f"unexpected value {arg!r} (no flag takes it)")
            continue
        flag, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = table.lookup(flag)
        if spec is None:
            longer = sorted(f for f in table.by_flag if f.startswith(flag))
            hint = (f"; abbreviations are not allowed: write {longer[0]}" if len(longer) == 1
                    else _elsewhere(table, flag))
            errors.append(f"{flag}: unknown option for {table.name}{hint}")
            while i < len(argv) and not _looks_like_flag(argv[i]):
                i += 1  # skip its values
            continue
        if spec.deprecated:
            warnings.append(f"{flag} is deprecated in {table.name}")
        if spec.dest in seen:
            warnings.append(f"{flag} is given more than once; the last one wins")
        seen.add(spec.dest)
        lo, hi = _count_range(spec)
        values: list[str] = []
        if eq:
            if hi == 0:
                errors.append(f"{flag} takes no value (got {inline!r})")
                continue
            values = [inline]
        else:
            while len(values) < hi and i < len(argv) and not _looks_like_flag(argv[i]):
                values.append(argv[i])
                i += 1
        if len(values) < lo:
            errors.append(f"{flag} needs a value" if lo == 1 else f"{flag} needs at least {lo} values")
            continue
        for v in values:
            _check_value(flag, spec, v, errors, table)
    return ArgvReport(tuple(errors), tuple(warnings))


def validate_argv(argv: Sequence[str], table: OptionTable) -> list[str]:
    """The problems (errors only) of ``argv`` against ``table``; empty when it is valid."""
    return list(check_argv(argv, table).errors)
