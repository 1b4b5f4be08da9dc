"""Turn pydantic validation errors into one-line problems written for people.

Pydantic's `loc` is mapped back onto the data (dropping union tags and other internal
steps), unknown keys list the allowed ones with a did-you-mean, and pattern failures are
explained in words instead of regular expressions.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from glm5cluster.model import inventory as inv
from glm5cluster.model.yaml_source import PathT

SHELL_CHARS = set(" \t\n\r'\"`$;&|<>()\\{}*?!#")

# pattern -> (what the value is, the rule in words)
PATTERNS: dict[str, tuple[str, str]] = {
    inv.NAME_RE: ("name", "use 1-40 lowercase letters, digits and '-', starting and ending with a letter or digit"),
    inv.HOST_RE: ("address", "use a DNS name, an IPv4 address or an IPv6 address without brackets"),
    inv.IFACE_RE: ("interface name", "use a Linux interface name such as eth0 or ens1f0 (at most 15 characters)"),
    inv.ENV_NAME_RE: ("environment variable name", "use letters, digits and '_', not starting with a digit"),
    inv.PATH_RE: ("path", "use an absolute path (starting with /) without control characters such as newlines"),
    inv.SAFE_PATH_RE: ("path", "use an absolute path of letters, digits and . _ / + -"),
    inv.LOCAL_PATH_RE: ("file path", "use a path without control characters such as newlines"),
    inv.LABEL_RE: ("label key", "use letters, digits, '_', '.' and '-' (at most 63, starting with a letter or digit)"),
    inv.LABEL_VALUE_RE: ("label value", "use letters, digits, '_', '.' and '-' (at most 63)"),
    inv.USER_RE: ("user name", "use a POSIX user name: lowercase letters, digits, '_' and '-'"),
    inv.URL_RE: ("URL", "use an http(s):// or file:// URL without spaces, quotes or shell characters"),
    inv.ENDPOINT_RE: ("URL", "use an http(s)://host[:port][/path] URL"),
    inv.JUMP_RE: ("jump host", "use [user@]host[:port]"),
    inv.REVISION_RE: ("revision", "use a commit hash, branch or tag (letters, digits, . _ / -)"),
    inv.SERVED_NAME_RE: ("model name", "use letters, digits and . _ / : -"),
    inv.VERSION_RE: ("version", "use a version such as 0.5.23 (quote it in YAML)"),
    inv.IMAGE_RE: ("image reference", "use a lowercase image reference such as lmsysorg/sglang:v0.5.23"),
    inv.SIZE_RE: ("size", "use a number with an optional unit k, m or g, e.g. 32g"),
    inv.REGISTRY_RE: ("registry", "use host[:port]"),
    inv.FLAG_RE: ("option name", "write the full long option, e.g. --mem-fraction-static"),
    inv.TEXT_RE: ("value", "control characters such as newlines are not allowed (one line per value)"),
}


def describe_input(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({short(value)})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({short(str(value))})"


def short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _hostile(value: str) -> str:
    found = sorted({c for c in value if c in SHELL_CHARS or not c.isprintable()})
    if not found:
        return ""
    return "; it must not contain spaces, quotes or shell characters (found " + " ".join(repr(c) for c in found) + ")"


def clean_loc(loc: tuple[int | str, ...], data: object) -> tuple[PathT, bool]:
    """Map a pydantic loc onto the data: keep real keys/indexes, drop union tags. -> (path, is_key)."""
    out: list[str | int] = []
    cur: Any = data
    is_key = False
    for n, comp in enumerate(loc):
        last = n == len(loc) - 1
        if comp == "[key]":
            is_key = True
        elif isinstance(cur, dict) and comp in cur:
            out.append(str(comp))
            cur = cur[comp]
        elif isinstance(cur, list) and isinstance(comp, int) and 0 <= comp < len(cur):
            out.append(comp)
            cur = cur[comp]
        elif last and isinstance(comp, str):
            out.append(comp)  # a missing field
            cur = None
    return tuple(out), is_key


def _models_in(tp: Any) -> list[type[BaseModel]]:
    """The record classes a (possibly Optional/Annotated/Union) annotation may hold."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _models_in(a)]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def _step(tp: Any, comp: str | int) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _step(typing.get_args(tp)[0], comp)
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            nxt = _step(a, comp)
            if nxt is not None:
                return nxt
        return None
    if origin is list and isinstance(comp, int):
        return typing.get_args(tp)[0]
    if origin is dict and isinstance(comp, str):
        return typing.get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(comp, str):
        f = tp.model_fields.get(comp)
        return f.annotation if f is not None else None
    return None


def allowed_keys(path: PathT, data: object) -> list[str]:
    """Field names allowed in the mapping at `path` (for a discriminated union: the chosen member)."""
    tp: Any = inv.Inventory
    for comp in path:
        tp = _step(tp, comp)
        if tp is None:
            return []
    models = _models_in(tp)
    kind = data.get("kind") if isinstance(data, dict) else None
    chosen = [m for m in models if kind is not None and "kind" in m.model_fields
              and typing.get_args(m.model_fields["kind"].annotation) == (kind,)]
    keys: list[str] = []
    for m in chosen or models:
        keys += [k for k in m.model_fields if k not in keys]
    return keys


def _value_at(data: object, path: PathT) -> object:
    cur: Any = data
    for comp in path:
        cur = cur[comp]
    return cur


EXPECTED = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string (quote it in YAML)", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping (key: value lines)", "model_attributes_type": "a mapping",
}
BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def translate(err: ErrorDetails, data: object) -> tuple[PathT, str, str | None]:
    """One pydantic error -> (path, message, hint)."""
    path, is_key = clean_loc(err["loc"], data)
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        parent = path[:-1]
        allowed = allowed_keys(parent, _value_at(data, parent))
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = (f"did you mean `{close[0]}`? " if close else "") + "allowed keys here: " + ", ".join(allowed)
        return path, f"unknown key `{key}`", hint
    if kind == "missing":
        return path, "required field is missing", f"add `{path[-1]}:`" if path else None
    if kind == "string_pattern_mismatch":
        what, rule = PATTERNS.get(ctx.get("pattern", ""), ("value", f"it must match {ctx.get('pattern')}"))
        if is_key:
            what += " (as a key)"
        free_text = ctx.get("pattern") in (inv.TEXT_RE, inv.PATH_RE, inv.LOCAL_PATH_RE)
        extra = _hostile(value) if isinstance(value, str) and not free_text else ""
        return path, f"{short(value)} is not a valid {what}{extra}", rule
    if kind in ("enum", "literal_error"):
        expected = str(ctx.get("expected", "")).replace("'", "")
        options = [o.strip() for o in expected.replace(" or ", ", ").split(",") if o.strip()]
        close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
        if not close:
            close = [o for o in options if o.lower() == str(value).lower()]
        return (path, f"{short(value)} is not allowed; choose one of: {', '.join(options)}",
                f"did you mean {close[0]}?" if close else None)
    if kind in EXPECTED:
        return path, f"expected {EXPECTED[kind]}, got {describe_input(value)}", None
    if kind in BOUNDS:
        limit = next(iter(ctx.values()), "?")
        return path, f"must be {BOUNDS[kind]} {limit} (got {short(value)})", None
    if kind == "too_short":
        return path, f"must have at least {ctx.get('min_length', 1)} item(s)", None
    if kind in ("too_long", "string_too_long"):
        return path, f"is too long (at most {ctx.get('max_length')})", None
    if kind == "union_tag_invalid":
        return path, f"unknown kind {short(ctx.get('tag'))}; choose one of: {str(ctx.get('expected_tags', '')).replace(chr(39), '')}", None
    if kind == "union_tag_not_found":
        return path, "missing `kind:`", "add `kind: hub` or `kind: path`"
    if kind == "value_error":
        return path, err["msg"].removeprefix("Value error, "), None
    return path, err["msg"], None
