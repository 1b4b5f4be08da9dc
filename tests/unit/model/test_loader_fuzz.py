"""Fuzzing the loader and the whole verdict: random structure, types, unicode and control
characters, YAML aliases and tags. Whatever the file holds: never a traceback (only
``InputProblems``, each one line), and bounded time. Alias bombs are refused without expansion."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from glm5cluster.cli.verdict import load_and_verify
from glm5cluster.errors import InputProblems
from glm5cluster.model.loader import load_inventory

hypothesis = pytest.importorskip("hypothesis")  # in the dev extras; CI installs it
st = pytest.importorskip("hypothesis.strategies")
given, settings, HealthCheck = hypothesis.given, hypothesis.settings, hypothesis.HealthCheck

BASE: dict[str, Any] = {
    "version": 1,
    "cluster": {"name": "fz", "gpu": {"kind": "H200", "count": 8}, "interface": "eth0"},
    "ssh": {"user": "root", "port": 22},
    "hosts": [{"name": "a", "address": "192.0.2.1"}, {"name": "b", "address": "192.0.2.2",
                                                       "cluster_address": "10.0.0.2"}],
    "model": {"repo": "zai-org/GLM-5-FP8", "weights_dir": "/data/glm5", "source": {"kind": "hub"}},
    "serving": {"http_port": 30000, "extra_args": ["--dist-timeout", "60"], "env": {"A": "b"},
                "features": {"dp_attention": False}},
    "replicas": {"count": 1},
}
PER_EXAMPLE_S = 5.0


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(BASE)[1:]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=40), st.sampled_from(["yes", "no", "on", "0x1f", "1e9", "~", "300.1.1.1", "::ffff:1.2.3.4",
                                           "/", "/a/../b", "http://u:p@h/x", "hf_" + "a" * 30, "a:b", "-" * 70]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
NOISE = ["\x00", "\x01", "\x1b", "\x7f", "\t", "\r", "\u2028", "\ufeff", "é", "😀", "&a ", "*a", "<<: ", "!!python/object ",
         "!x ", "{", "[", ": ", "- ", "'", '"', "\n  ", "---\n", "%YAML 1.1\n", "? "]


def mutate(data: dict[str, Any], edits: list[tuple[int, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for index, value in edits:
        path = PATHS[index % len(PATHS)]
        cur: Any = out
        try:
            for comp in path[:-1]:
                cur = cur[comp]
            cur[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass
    return out


def check_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    start = time.monotonic()
    for load in (load_inventory, load_and_verify):
        try:
            load(path)
        except InputProblems as exc:
            assert exc.problems
            for p in exc.problems:
                assert "\n" not in str(p)
    assert time.monotonic() - start < PER_EXAMPLE_S


FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), values), min_size=1, max_size=4))
def test_structure_and_types(tmp_path: Path, edits: list[tuple[int, Any]]) -> None:
    check_file(tmp_path, yaml.safe_dump(mutate(BASE, edits), sort_keys=False, allow_unicode=True))


@FUZZ
@given(cuts=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(NOISE) | st.text(max_size=3)),
                     min_size=1, max_size=5))
def test_raw_text_noise(tmp_path: Path, cuts: list[tuple[int, str]]) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False)
    for pos, piece in cuts:
        i = pos % (len(text) + 1)
        text = text[:i] + piece + text[i:]
    check_file(tmp_path, text)


@FUZZ
@given(levels=st.integers(1, 12), width=st.integers(1, 12), where=st.sampled_from(["env", "labels", "extra"]))
def test_aliases(tmp_path: Path, levels: int, width: int, where: str) -> None:
    lines = ['l0: &l0 ["x"]']
    for n in range(1, levels + 1):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]")
    anchors = "x-anchors:\n" + "\n".join("  " + ln for ln in lines) + "\n"
    body = yaml.safe_dump(BASE, sort_keys=False)
    check_file(tmp_path, body + anchors)  # unknown key, but the aliases are read first
    check_file(tmp_path, body.replace("extra_args:\n", f"extra_args: *l{levels}\n  extra_args_x:\n", 1))


def test_alias_bomb_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol"]'] + [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\ncluster: *a9\n")
    start = time.monotonic()
    with pytest.raises(InputProblems) as info:
        load_inventory(path)
    assert time.monotonic() - start < 2
    assert "alias bomb" in str(info.value.problems[0]) and "100000" in str(info.value.problems[0])


def test_recursive_alias_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("cluster: &c {name: x, self: *c}\n")
    with pytest.raises(InputProblems) as info:
        load_inventory(path)
    assert "refers to a value that contains it" in str(info.value.problems[0])


def test_control_character_is_a_located_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text("version: 1\ncluster:\n  name: a\x07b\n")
    with pytest.raises(InputProblems) as info:
        load_inventory(path)
    [p] = info.value.problems
    assert p.line == 3 and "#x0007" in p.message
