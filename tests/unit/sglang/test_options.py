"""The option-table validator, the real per-release tables and the profiles read off them."""

from __future__ import annotations

import pytest

from glm5cluster.errors import PlanError
from glm5cluster.sglang import (
    check_argv,
    load_table,
    profile_for,
    supported_releases,
    table_for,
    validate_argv,
)
from glm5cluster.sglang import profiles as profiles_mod
from glm5cluster.sglang.options import OptionTable


@pytest.fixture(scope="module")
def table():
    return load_table("0.5.23")


def test_shipped_table_matches_the_capture(table):
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


def test_only_flags_retired_by_the_release_are_deprecated(table):
    # the earlier capture marked every option whose help merely *mentions* "deprecated"
    assert not table.lookup("--smg-grpc-mode").deprecated  # the replacement of --grpc-mode
    assert table.lookup("--grpc-mode").deprecated
    assert not table.lookup("--unified-cache-external-linker-config").deprecated


def test_supported_releases_are_the_glm5_era():
    releases = supported_releases()
    assert releases[0] == "0.5.8" and releases[-1] == "0.5.23" and len(releases) == 21
    assert {"0.5.8.post1", "0.5.10.post1", "0.5.12.post1", "0.5.13.post1", "0.5.15.post1"} <= set(releases)
    for v in releases:
        t = table_for(v)
        assert t.name == f"sglang {v}" and t.lookup("--tp-size") and t.lookup("--reasoning-parser")


# What the real tables say (docs/sglang-releases.md); the earlier hand-derived table assumed
# every change landed in 0.5.23.
@pytest.mark.parametrize(("version", "argv", "ok"), [
    ("0.5.8", ["--nsa-decode-backend", "tilelang", "--attention-backend", "nsa"], True),
    ("0.5.8", ["--nsa-decode-backend", "trtllm"], False),  # trtllm is a choice from 0.5.9
    ("0.5.8.post1", ["--nsa-prefill-backend", "trtllm"], False),
    ("0.5.9", ["--nsa-decode-backend", "trtllm"], True),
    ("0.5.12.post1", ["--dsa-decode-backend", "trtllm"], False),
    ("0.5.12.post1", ["--attention-backend", "dsa"], False),
    ("0.5.13", ["--dsa-decode-backend", "trtllm", "--attention-backend", "dsa"], True),
    ("0.5.13", ["--flashinfer-allreduce-fusion-backend", "auto"], False),
    ("0.5.14", ["--flashinfer-allreduce-fusion-backend", "auto"], True),
    ("0.5.19", ["--nsa-decode-backend", "trtllm"], True),  # a deprecated alias until 0.5.19
    ("0.5.20", ["--nsa-decode-backend", "trtllm"], False),
    ("0.5.21", ["--attn-dp-size", "8"], False),
    ("0.5.22", ["--attn-dp-size", "8"], True),
])
def test_release_facts(version, argv, ok):
    assert (validate_argv(argv, table_for(version)) == []) is ok


def test_deprecations_follow_the_release():
    assert not check_argv(["--enable-dp-attention"], table_for("0.5.21")).warnings
    assert check_argv(["--enable-dp-attention"], table_for("0.5.22")).warnings
    assert not check_argv(["--enable-flashinfer-allreduce-fusion"], table_for("0.5.13")).warnings
    assert check_argv(["--enable-flashinfer-allreduce-fusion"], table_for("0.5.14")).warnings
    assert check_argv(["--nsa-decode-backend", "trtllm"], table_for("0.5.13")).warnings


@pytest.mark.parametrize(("version", "family", "spelled"), [
    ("0.5.8", "launch-era", ("nsa", "--nsa-prefill-backend", "--nsa-decode-backend", "--dp-size",
                             "--enable-flashinfer-allreduce-fusion")),
    ("0.5.12.post1", "launch-era", ("nsa", "--nsa-prefill-backend", "--nsa-decode-backend", "--dp-size",
                                    "--enable-flashinfer-allreduce-fusion")),
    ("0.5.13", "transitional", ("dsa", "--dsa-prefill-backend", "--dsa-decode-backend", "--dp-size",
                                "--enable-flashinfer-allreduce-fusion")),
    ("0.5.14", "transitional", ("dsa", "--dsa-prefill-backend", "--dsa-decode-backend", "--dp-size",
                                "--flashinfer-allreduce-fusion-backend")),
    ("0.5.22", "0.5.23", ("dsa", "--dsa-prefill-backend", "--dsa-decode-backend", "--attn-dp-size",
                          "--flashinfer-allreduce-fusion-backend")),
    ("0.5.23", "0.5.23", ("dsa", "--dsa-prefill-backend", "--dsa-decode-backend", "--attn-dp-size",
                          "--flashinfer-allreduce-fusion-backend")),
])
def test_profiles(version, family, spelled):
    p = profile_for(version)
    assert p.version == version and p.family == family
    assert (p.attention_backend_value, p.dsa_prefill_flag, p.dsa_decode_flag, p.dp_attention_flag,
            p.allreduce_fusion_flag) == spelled
    rendered = ["--attention-backend", p.attention_backend_value, p.dsa_prefill_flag, "tilelang",
                p.dsa_decode_flag, "tilelang", *p.dp_attention(8), *p.allreduce_fusion()]
    report = check_argv(rendered, table_for(version))
    assert report.ok and not report.warnings, report  # current spellings only: nothing deprecated


def test_every_release_profile_renders_current_spellings():
    for v in supported_releases():
        p = profile_for(v)
        argv = ["--attention-backend", p.attention_backend_value, p.dsa_prefill_flag, "tilelang",
                p.dsa_decode_flag, "tilelang", *p.dp_attention(4), *p.allreduce_fusion()]
        report = check_argv(argv, table_for(v))
        assert report.ok and not report.warnings, (v, report)


def test_profile_is_read_off_the_table_not_the_version(monkeypatch):
    real = table_for("0.5.23")
    without = OptionTable.of("sglang 0.5.23 minus", [o for o in real.options
                                                     if "--attn-dp-size" not in o.flags])
    monkeypatch.setattr(profiles_mod, "table_for", lambda v: without)
    profiles_mod._profile.cache_clear()
    try:
        p = profiles_mod._profile("0.5.23")
        assert p.dp_attention(8) == ["--dp-size", "8", "--enable-dp-attention"] and p.family == "transitional"
    finally:
        profiles_mod._profile.cache_clear()


@pytest.mark.parametrize(("version", "needle"), [
    ("0.5.7", "predates GLM-5"),
    ("0.4.10.post2", "predates GLM-5"),
    ("0.5.24", "has no option table"),
    ("0.6.0", "has no option table"),
    ("0.5.10rc0", "has no option table"),
    ("0.5.9.post1", "has no option table"),
])
def test_versions_without_a_table_are_refused(version, needle):
    for call in (profile_for, table_for):
        with pytest.raises(PlanError) as e:
            call(version)
        assert e.value.path == "serving.sglang_version" and needle in str(e.value)
        assert "0.5.8, 0.5.8.post1, 0.5.9" in str(e.value.hint) and "0.5.23 recommended" in str(e.value.hint)


@pytest.mark.parametrize(("image", "release"), [
    ("lmsysorg/sglang:v0.5.10", "0.5.10"),
    ("lmsysorg/sglang:v0.5.10-cu130", "0.5.10"),
    ("lmsysorg/sglang:v0.5.23-cu130", "0.5.23"),
    ("rocm/sgl-dev:v0.5.8.post1-rocm720-mi30x-20260219", "0.5.8.post1"),
    ("registry.local:5000/lmsysorg/sglang:v0.5.9@sha256:" + "a" * 64, "0.5.9"),
    ("lmsysorg/sglang:glm5-hopper", None),
    ("lmsysorg/sglang:glm5-blackwell", None),
    ("lmsysorg/sglang:latest", None),
    ("lmsysorg/sglang", None),
    ("registry.local:5000/sglang", None),
])
def test_release_of_image(image, release):
    assert profiles_mod.release_of_image(image) == release


@pytest.mark.parametrize(("version", "argv", "needle"), [
    ("0.5.8", ["--nsa-decode-backend", "trtllm"], "invalid choice 'trtllm'"),
    ("0.5.21", ["--attn-dp-size", "8"], "unknown option for sglang 0.5.21"),
    ("0.5.23", ["--cuda-graph-max-bs", "8"], "unknown option for sglang 0.5.23"),
])
def test_errors_name_the_releases_that_offer_it(version, argv, needle):
    (problem,) = validate_argv(argv, table_for(version))
    span = {"0.5.8": "SGLang 0.5.9 .. 0.5.19 offer it", "0.5.21": "SGLang 0.5.22 .. 0.5.23 offer it",
            "0.5.23": "SGLang 0.5.8 .. 0.5.19 offer it"}[version]
    assert needle in problem and span in problem, problem
    assert "offer" not in validate_argv(["--bogus"], table_for(version))[0]
