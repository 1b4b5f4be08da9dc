"""One verdict: `validate` and `plan` run the same checks and agree on every inventory we have
(the examples, the bad cases, and a few made here); plan's text output is plain and exact."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from glm5cluster.cli.main import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FILES = sorted((ROOT / "inventory").glob("*.yaml")) + sorted((HERE / "bad").glob("*.yaml"))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def errors(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("error: ")]


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_validate_and_plan_agree(path: Path, capsys: pytest.CaptureFixture[str], example_home: Path) -> None:
    v_rc, _, v_err = run(["validate", str(path)], capsys)
    p_rc, p_out, p_err = run(["plan", str(path), "--format", "json"], capsys)
    assert v_rc == p_rc, (v_err, p_err)
    assert errors(v_err) == errors(p_err)
    assert "Traceback" not in v_err + p_err
    if v_rc == 0:
        assert p_out.startswith("{")


def write(tmp_path: Path, serving: str, extra: str = "") -> Path:
    text = ("version: 1\ncluster: {name: t, gpu: {kind: H200, count: 8}}\n"
            "hosts:\n  - {name: h0, address: 192.0.2.1}\n"
            "model: {repo: zai-org/GLM-5-FP8, weights_dir: /data/glm5}\n"
            "serving:\n" + serving + extra)
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    return path


def test_validate_reports_every_problem_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '  extra_args: ["--no-such", "--tp-size", "4", "--mem-fraction-static", "0.7"]\n'
                           "  features: {served_model_name: 'a:b'}\n")
    rc, out, err = run(["validate", str(path)], capsys)
    assert rc == 2 and out == ""
    lines = errors(err)
    assert len(lines) == len(set(lines)) == 4, err
    assert any("--no-such: unknown option" in ln for ln in lines)
    assert any("--tp-size, which the planner decides" in ln for ln in lines)
    assert any("override_flags" in ln for ln in lines)
    assert any("served_model_name: served model name 'a:b' contains ':'" in ln for ln in lines)


def test_served_name_colon_found_once_the_extra_args_are_fine(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "  features: {served_model_name: 'a:b'}\n")
    rc, _, err = run(["validate", str(path)], capsys)
    [line] = errors(err)
    assert rc == 2 and ":7: serving.features.served_model_name:" in line
    assert "validation_hook.py:213-219" in line


def test_override_is_allowed_when_named_and_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '  extra_args: ["--mem-fraction-static", "0.7"]\n'
                           '  override_flags: ["--mem-fraction-static"]\n')
    assert run(["validate", str(path)], capsys)[0] == 0
    rc, out, _ = run(["plan", str(path)], capsys)
    assert rc == 0
    assert "--mem-fraction-static: 0.85 (cookbook) -> 0.7 (serving.extra_args)" in out


def test_warnings_trust_remote_code_and_open_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '  extra_args: ["--trust-remote-code"]\n')
    rc, _, err = run(["validate", str(path)], capsys)
    assert rc == 0
    assert "model.revision: --trust-remote-code runs Python" in err
    assert "with no API key" in err
    pinned = write(tmp_path, '  extra_args: ["--trust-remote-code"]\n  secrets: {api_key_env: K}\n',
                   "").read_text().replace("weights_dir: /data/glm5}", "weights_dir: /data/glm5, revision: "
                                           + "0123456789abcdef0123456789abcdef01234567}")
    (tmp_path / "inv.yaml").write_text(pinned)
    rc, _, err = run(["validate", str(tmp_path / "inv.yaml")], capsys)
    assert rc == 0 and "warning" not in err


def test_local_files_exist_and_are_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "id"
    key.write_text("k")
    path = write(tmp_path, "  http_port: 30000\n", "ssh: {identity_file: ./id, known_hosts: ./kh}\n")
    rc, _, err = run(["validate", str(path)], capsys)
    assert rc == 0 and "ssh.known_hosts:" in err and "does not exist yet" in err
    key.unlink()
    rc, _, err = run(["validate", str(path)], capsys)
    assert rc == 2 and f"ssh.identity_file: {key} does not exist" in err
    key.mkdir()
    rc, _, err = run(["validate", str(path)], capsys)
    assert rc == 2 and "is a folder, not a file" in err
    docker = write(tmp_path, "  runtime: docker\n  image_archive: ./nope.tar\n")
    rc, _, err = run(["validate", str(docker)], capsys)
    assert rc == 2 and "serving.image_archive: ./nope.tar does not exist" in err


def test_plan_text_is_plain_and_copy_pasteable_on_a_narrow_terminal(tmp_path: Path, example_home: Path) -> None:
    inv = ROOT / "inventory" / "b200-bf16.yaml"
    exe = ROOT / ".venv" / "bin" / "glm5cluster"
    env = {**os.environ, "COLUMNS": "30", "HOME": str(example_home)}
    text = subprocess.run([str(exe), "plan", str(inv)], capture_output=True, text=True, env=env,
                          timeout=60, check=True).stdout
    import json
    doc = json.loads(subprocess.run([str(exe), "plan", str(inv), "--format", "json"], capture_output=True,
                                    text=True, env=env, timeout=60, check=True).stdout)
    lines = text.splitlines()
    for rep in doc["replicas"]:
        assert rep["endpoint"] in text and rep["dist_init_addr"] in text
        for node in rep["nodes"]:
            assert shlex.join(node["command"]) in lines  # one whole line, exactly
            assert shlex.split(shlex.join(node["command"])) == node["command"]
    for box in "│─╭╮╰╯┃━":
        assert box not in text


def test_extra_packages_are_requirements_and_venv_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = write(tmp_path, "  extra_packages: ['sglang[bench]==0.5.23', sgl-eval==0.1.3, 'aiohttp>=3.9,<4']\n")
    rc, _, err = run(["validate", str(ok)], capsys)
    assert rc == 0, err
    for bad, why in (("-e .", "is a pip option"), ("--index-url=http://x/simple", "is a pip option"),
                     ("sgl-eval @ https://user:secret@example.com/sgl_eval.whl", "is a URL reference"),
                     ("sgl-eval==0.1.3; rm -rf /`", "is not a PEP 508 requirement")):
        path = write(tmp_path, f"  extra_packages: [{bad!r}]\n")
        rc, _, err = run(["validate", str(path)], capsys)
        assert rc == 2 and "inv.yaml:7: serving.extra_packages[0]:" in err and why in err, err
        assert "Traceback" not in err
    docker = write(tmp_path, "  runtime: docker\n  extra_packages: [sgl-eval==0.1.3]\n")
    rc, _, err = run(["validate", str(docker)], capsys)
    assert rc == 2 and "serving.extra_packages: the docker runtime runs the image as it is" in err
    assert "build an image that contains them" in err


def test_bench_data_paths_resolve_against_the_inventory_and_must_exist(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "  http_port: 30000\n",
                 "bench: {gsm8k_data_path: q/gsm8k.jsonl, sharegpt_path: q/sg.json, mmlu_data_path: q/mmlu.jsonl}\n")
    rc, _, err = run(["validate", str(path)], capsys)
    assert rc == 2
    for field, name in (("gsm8k_data_path", "gsm8k.jsonl"), ("sharegpt_path", "sg.json"), ("mmlu_data_path", "mmlu.jsonl")):
        assert f"inv.yaml:8: bench.{field}: {tmp_path / 'q' / name} does not exist" in err, err
    (tmp_path / "q").mkdir()
    for name in ("gsm8k.jsonl", "sg.json", "mmlu.jsonl"):
        (tmp_path / "q" / name).write_text("{}\n")
    rc, _, err = run(["validate", str(path)], capsys)
    assert rc == 0, err
