"""Option tables and the argv validator.

The 0.5.23 table is ``data/server-options-0.5.23.json``, read from ``ServerArgs.add_cli_args``
of the released 0.5.23 wheel (``sglang/srt/server_args.py``). The launch-era table is *derived* from it by ``launch_era_table``:
the renames of PR #25821 are undone (``--dsa-prefill-backend``/``--dsa-decode-backend`` become
``--nsa-*`` with the same choices; ``--dsa-prefill-cp-mode`` and
``--enable-dsa-prefill-context-parallel`` likewise), the 0.5.23-only replacements are removed
(``--attn-dp-size``, ``--flashinfer-allreduce-fusion-backend``) and the flags they replaced
are no longer deprecated (``--enable-dp-attention``, ``--enable-flashinfer-allreduce-fusion``).
It checks the renamed flags; it is not a capture of a launch-era parser.

The validator is stricter than argparse: prefix abbreviations are refused (``--tp``), as is a
value that looks like a flag.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources

from glm5cluster.sglang.profiles import profile_for


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


@cache
def load_table(version: str = "0.5.23") -> OptionTable:
    data = resources.files("glm5cluster.sglang").joinpath(f"data/server-options-{version}.json")
    doc = json.loads(data.read_text())
    return OptionTable.of(f"sglang {doc['version']}", [_spec(o) for o in doc["options"]])


LAUNCH_ERA_RENAMES = {
    "--dsa-prefill-backend": "--nsa-prefill-backend",
    "--dsa-decode-backend": "--nsa-decode-backend",
    "--dsa-prefill-cp-mode": "--nsa-prefill-cp-mode",
    "--enable-dsa-prefill-context-parallel": "--enable-nsa-prefill-context-parallel",
}
LAUNCH_ERA_ABSENT = {"--attn-dp-size", "--flashinfer-allreduce-fusion-backend"}
LAUNCH_ERA_CURRENT = {"--enable-dp-attention", "--enable-flashinfer-allreduce-fusion"}


@cache
def launch_era_table() -> OptionTable:
    out: list[OptionSpec] = []
    for o in load_table("0.5.23").options:
        if LAUNCH_ERA_ABSENT & set(o.flags):
            continue
        flags = tuple(LAUNCH_ERA_RENAMES.get(f, f) for f in o.flags)
        deprecated = False if LAUNCH_ERA_CURRENT & set(flags) else o.deprecated
        dest = o.dest.replace("dsa", "nsa") if flags != o.flags else o.dest
        out.append(replace(o, flags=flags, deprecated=deprecated, dest=dest))
    return OptionTable.of("sglang launch era (derived)", out)


def table_for(version: str) -> OptionTable:
    return load_table("0.5.23") if profile_for(version).family == "0.5.23" else launch_era_table()


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


def _check_value(flag: str, spec: OptionSpec, value: str, errors: list[str]) -> None:
    if spec.choices is not None and value not in spec.choices:
        shown = ", ".join(spec.choices[:12]) + (" ..." if len(spec.choices) > 12 else "")
        errors.append(f"{flag}: invalid choice {value!r} (choose from {shown})")
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
            hint = f"; abbreviations are not allowed: write {longer[0]}" if len(longer) == 1 else ""
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
            _check_value(flag, spec, v, errors)
    return ArgvReport(tuple(errors), tuple(warnings))


def validate_argv(argv: Sequence[str], table: OptionTable) -> list[str]:
    """The problems (errors only) of ``argv`` against ``table``; empty when it is valid."""
    return list(check_argv(argv, table).errors)
