"""The simulator against the shipped real tables: it may print only lines of the log-template
table (the real wheels' wording, file:line) and accept exactly the options of the real 0.5.23
option table. A drift either way fails here."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from glm5cluster.facts.sglang_log import TEMPLATES_FILE, Phase, read_log, template_regex
from glm5cluster.lab.sim.sglang_sim.build import build_wheel
from tests.unit.sim.conftest import SIM_SRC, free_port, http, sim_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
SIM_TABLE = SIM_SRC / "sglang" / "_sim" / "log_templates.json"
SIM_OPTIONS = SIM_SRC / "sglang" / "srt" / "server_options.json"
REAL_OPTIONS = REPO / "glm5cluster" / "sglang" / "data" / "server-options-0.5.23.json"
PREFIX = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( TP\d+)?\] ")
TRACEBACK_START = ("Traceback (most recent call last):", "Scheduler hit an exception: Traceback")


def table() -> dict:
    return json.loads(TEMPLATES_FILE.read_text())


def stray_lines(text: str, family: str) -> list[str]:
    """Lines of a simulator log that no template of the family (or third party) explains.
    Lines inside a Python traceback (frames, the exception text) are the exception's, not log lines."""
    t = table()
    specs = {**t["third_party"], **t["families"][family]["templates"]}
    logged = [re.compile(template_regex(s["text"])) for s in specs.values() if s["prefix"] in ("rank", "server")]
    uvicorn = [re.compile(template_regex(s["text"])) for s in specs.values() if s["prefix"] == "uvicorn"]
    bare = [re.compile(template_regex(s["text"])) for s in specs.values() if s["prefix"] == "none"]
    stray, in_traceback = [], False
    for line in text.splitlines():
        m = PREFIX.match(line)
        if m:
            msg = line[m.end():]
            uv = re.match(r"^(INFO|ERROR):\s+", msg)
            ok = any(p.fullmatch(msg[uv.end():]) for p in uvicorn) if uv else any(p.fullmatch(msg) for p in logged)
            if not ok:
                stray.append(line)
            in_traceback = msg.startswith(TRACEBACK_START[1])
        elif any(p.fullmatch(line) for p in bare):
            in_traceback = False
        elif line.startswith(TRACEBACK_START[0]):
            in_traceback = True
        elif not in_traceback:
            stray.append(line)
    return stray


def test_classifier_and_simulator_read_the_same_table() -> None:
    assert SIM_TABLE.read_bytes() == TEMPLATES_FILE.read_bytes()


def test_every_template_cites_the_real_source() -> None:
    t = table()
    assert set(t["families"]) == {"0.5.23", "0.5.9"}
    for family in t["families"].values():
        for key, spec in family["templates"].items():
            assert re.match(r"sglang/srt/\S+\.py:\d+", spec["where"]), key
    for key, spec in t["third_party"].items():
        assert spec["where"].startswith(("uvicorn ", "torch", "NCCL")), key


def test_simulator_accepts_exactly_the_real_option_table() -> None:
    assert json.loads(SIM_OPTIONS.read_text()) == json.loads(REAL_OPTIONS.read_text())
    code = ("import json; from sglang.srt.server_args import make_parser; p = make_parser();"
            "print(json.dumps(sorted(s for a in p._actions for s in a.option_strings)))")
    res = subprocess.run([sys.executable, "-c", code], env=sim_env(), capture_output=True, text=True, timeout=60)
    accepted = set(json.loads(res.stdout))
    real = {f for opt in json.loads(REAL_OPTIONS.read_text())["options"] for f in opt["flags"]}
    assert accepted == real


def test_stray_line_detection_can_fail() -> None:
    assert stray_lines("[2026-01-01 00:00:00 TP0] Init torch distributed begin.\n", "0.5.23")
    assert not stray_lines("[2026-01-01 00:00:00 TP0] Init parallel begin.\n", "0.5.23")
    assert stray_lines("[2026-01-01 00:00:00] Received shutdown from node 0; exiting.\n", "0.5.23")


def test_two_node_life_prints_only_table_lines(launcher, model_dir: Path) -> None:
    dist, p0, p1 = free_port(), free_port(), free_port()
    common = ["--model-path", str(model_dir), "--tp-size", "16", "--nnodes", "2", "--dist-init-addr",
              f"127.0.0.1:{dist}", "--host", "127.0.0.1", "--enable-metrics", "--api-key", "k"]
    r0 = launcher([*common, "--node-rank", "0", "--port", str(p0)], SGLANG_SIM_REQUEST_SECONDS="1.5")
    r1 = launcher([*common, "--node-rank", "1", "--port", str(p1)])
    r0.wait_for("The server is fired up and ready to roll!")
    base = f"http://127.0.0.1:{p0}"
    for path in ("/health", "/ready", "/get_model_info", "/get_server_info", "/v1/loads", "/metrics", "/nope"):
        http(base + path, key="k")
    http(base + "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "k")
    r1.proc.send_signal(signal.SIGTERM)
    r1.wait_for("SIGTERM received on node_rank 1")
    slow = ThreadPoolExecutor(1).submit(
        http, base + "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "k")
    time.sleep(0.3)
    r0.proc.send_signal(signal.SIGTERM)
    r0.wait_for("Gracefully exiting... Remaining number of requests 1.")
    assert http(base + "/health")[0] == 503
    assert slow.result(10)[0] == 200
    assert r0.wait_exit(20) == 0 and r1.wait_exit(20) == 0
    for r in (r0, r1):
        assert stray_lines(r.text(), "0.5.23") == []
    assert read_log(r0.text().splitlines()).phase == Phase.READY


@pytest.mark.parametrize("env", [
    {"SGLANG_SIM_OOM_AT_LOAD": "1"}, {"SGLANG_SIM_GLOO_FAIL": "1"}, {"SGLANG_SIM_OLD_TRANSFORMERS": "1"},
    {"SGLANG_SIM_CRASH_AFTER": "0.2", "SGLANG_SIM_LOAD_SECONDS": "5"},
])
def test_failure_paths_print_only_table_lines(model_dir: Path, env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, "-m", "sglang.launch_server", "--model-path", str(model_dir),
                          "--tp-size", "8", "--port", str(free_port())],
                         env=sim_env(**env), capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert stray_lines(res.stderr, "0.5.23") == []


def test_older_version_speaks_its_own_family(tmp_path: Path, model_dir: Path) -> None:
    wheel = build_wheel(str(tmp_path), "0.5.9")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = sim_env()
    env["PYTHONPATH"] = str(site)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sglang.launch_server", "--model-path", str(model_dir),
                             "--tp-size", "8", "--port", str(port), "--host", "127.0.0.1"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if "fired up and ready" in line:
                break
        info = json.loads(http(f"http://127.0.0.1:{port}/server_info")[1])
    finally:
        proc.kill()
        proc.wait(10)
    text = "\n".join(lines)
    assert info["version"] == "0.5.9"
    assert "TP0] Init torch distributed begin." in text and "Capture cuda graph bs [" in text
    assert "server_args=ServerArgs(" in text
    assert stray_lines(text, "0.5.9") == []
    assert read_log(lines).phase == Phase.READY


def test_wheel_of_a_version_takes_that_versions_option_table(tmp_path: Path) -> None:
    real = json.loads(REAL_OPTIONS.read_text())
    older = dict(real, version="0.5.9", options=real["options"][:5])
    tables = tmp_path / "data"
    tables.mkdir()
    (tables / "server-options-0.5.9.json").write_text(json.dumps(older))
    wheel = zipfile.ZipFile(build_wheel(str(tmp_path / "a"), "0.5.9", str(tables)))
    assert json.loads(wheel.read("sglang/srt/server_options.json")) == older
    assert wheel.read("sglang/version.py") == b'__version__ = "0.5.9"\n'
    default = zipfile.ZipFile(build_wheel(str(tmp_path / "b")))
    assert json.loads(default.read("sglang/srt/server_options.json")) == real
