"""The option-table validator and the launch-era table."""

from __future__ import annotations

import pytest

from glm5cluster.errors import PlanError
from glm5cluster.sglang import (
    check_argv,
    launch_era_table,
    load_table,
    profile_for,
    table_for,
    validate_argv,
)


@pytest.fixture(scope="module")
def table():
    return load_table("0.5.23")


def test_shipped_table_matches_fixture(table):
    assert table.name == "sglang 0.5.23" and len(table.options) == 532


def test_valid_argv(table):
    assert validate_argv(["--tp-size", "8", "--trust-remote-code", "--chunked-prefill-size", "-1",
                          "--mem-fraction-static=0.85", "--context-length", "128k",
                          "--json-model-override-args", '{"a": 1}'], table) == []


@pytest.mark.parametrize(("argv", "needle"), [
    (["--tp", "8"], "abbreviations are not allowed: write --tp-size"),
    (["--no-such-flag"], "unknown option"),
    (["--tp-size"], "needs a value"),
    (["--tp-size", "--trust-remote-code"], "needs a value"),
    (["--tp-size", "eight"], "does not parse as int"),
    (["--mem-fraction-static", "lots"], "does not parse as float"),
    (["--reasoning-parser", "glm99"], "invalid choice"),
    (["--trust-remote-code=yes"], "takes no value"),
    (["--nsa-prefill-backend", "tilelang"], "unknown option"),
    (["stray"], "unexpected value"),
    (["--trust-remote-code", "yes"], "unexpected value"),
    (["--default-chat-template-kwargs", "{bad"], "does not parse"),
])
def test_invalid_argv(table, argv, needle):
    problems = validate_argv(argv, table)
    assert problems and needle in problems[0], problems


def test_deprecated_and_repeated_are_warnings(table):
    r = check_argv(["--dp-size", "8", "--enable-dp-attention", "--tp-size", "8", "--tp-size", "16"], table)
    assert r.ok
    assert any("--enable-dp-attention is deprecated" in w for w in r.warnings)
    assert any("more than once" in w for w in r.warnings)


def test_launch_era_table_speaks_old_names():
    old = launch_era_table()
    assert validate_argv(["--nsa-prefill-backend", "tilelang", "--nsa-decode-backend", "trtllm",
                          "--dp-size", "8", "--enable-dp-attention",
                          "--enable-flashinfer-allreduce-fusion", "--attention-backend", "nsa"], old) == []
    assert not check_argv(["--enable-dp-attention"], old).warnings
    assert validate_argv(["--dsa-prefill-backend", "tilelang"], old)
    assert validate_argv(["--attn-dp-size", "8"], old)
    assert validate_argv(["--flashinfer-allreduce-fusion-backend", "auto"], old)


def test_profiles():
    assert profile_for("0.5.23").family == "0.5.23"
    assert profile_for("0.6.0").family == "0.5.23"
    for v in ("0.5.8", "0.5.8.post1", "0.5.10", "0.5.10rc0"):
        assert profile_for(v).family == "launch-era"
        assert table_for(v).name.startswith("sglang launch era")
    with pytest.raises(PlanError) as e:
        profile_for("0.5.7")
    assert e.value.path == "serving.sglang_version"
