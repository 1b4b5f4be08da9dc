"""The runtime seam: both implementations' state parsing, stop-with-grace run through a real
``sh`` against fake ``systemctl``/``docker`` (edge fakes recording what they were asked), the
survey, and a non-rank service (the router's shape) in both runtimes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from glm5cluster.runtime import ContainerRuntime, Service, UnitRuntime, router_stem
from glm5cluster.runtime.survey import parse_survey

DATA = Path(__file__).resolve().parents[2] / "facts" / "replica"
UNIT = UnitRuntime("/opt/venv")
CTR = ContainerRuntime("0.5.23")


def _unit_text(show: str, stamp: str = "") -> str:
    clock = (DATA / "clock.txt").read_text()
    return f"{show}@@glm5cluster:clock@@\n{clock}@@glm5cluster:stamp@@\n{stamp}\n"


def test_unit_state_with_clock_and_stamp() -> None:
    show = (DATA / "systemctl-show_active.txt").read_text() + "InvocationID=abc\nMainPID=42\n"
    st = UNIT.parse_state("glm5-c-r0.service", _unit_text(show, "d1 abc"))
    assert st.up and st.digest == "d1" and st.identity == "abc" and st.kind == "unit"
    assert st.started_at is not None and st.now is not None and 0 < st.now - st.started_at < 100
    # a stamp written for another invocation (a manual restart since) does not count
    assert UNIT.parse_state("u", _unit_text(show, "d1 other")).digest == ""
    killed = UNIT.parse_state("u", _unit_text((DATA / "systemctl-show_failed-sigkill.txt").read_text()))
    assert killed.state == "failed" and killed.signal == 9 and killed.exited_at is not None
    assert not UNIT.parse_state("u", _unit_text((DATA / "systemctl-show_not-found.txt").read_text())).exists


def test_container_state_with_id_and_digest_label() -> None:
    running = (DATA / "docker-inspect-state_running.json").read_text()
    text = f"@@glm5cluster:container@@\nc0ffee\nd1\n{running}now=1795989162.5\n"
    st = CTR.parse_state("glm5-c-r0", text)
    assert st.up and (st.identity, st.digest, st.now, st.kind) == ("c0ffee", "d1", 1795989162.5, "container")
    nolabel = CTR.parse_state("x", text.replace("\nd1\n", "\n<no value>\n"))
    assert nolabel.digest == ""
    assert CTR.parse_state("x", "@@glm5cluster:container@@\nabsent\nnow=1\n").state == "absent"


FAKE_DOCKER = """\
import os, sys
log, state = os.environ["FAKE_LOG"], os.environ["FAKE_STATE"]
with open(log, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
running = open(state).read().strip() == "running"
if args[0] == "inspect":
    print("true" if running else "false")
elif args[0] == "kill" and args[2] in os.environ["FAKE_EXITS_ON"].split(","):
    open(state, "w").write("exited")
elif args[0] == "stop":
    if "TERM" in os.environ["FAKE_EXITS_ON"].split(","):
        open(state, "w").write("exited")
"""


def _run_stop(tmp_path: Path, script: str, exits_on: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("docker", "systemctl"):
        (bin_dir / tool).write_text(f"#!{sys.executable}\n" + FAKE_DOCKER.replace('args = sys.argv[1:]', (
            'args = sys.argv[1:]\nif "systemctl" in sys.argv[0]:\n'
            '    args = {"is-active": ["inspect"], "kill": ["kill", "-s", args[2].replace("SIG", "")],\n'
            '            "stop": ["stop"], "reset-failed": ["rm"]}[args[0]]\n'
            '    if args[0] == "inspect":\n'
            '        sys.exit(0 if open(state).read().strip() == "running" else 3)')))
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "state").write_text("running")
    log = tmp_path / "log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
           "FAKE_STATE": str(tmp_path / "state"), "FAKE_EXITS_ON": exits_on}
    subprocess.run(["sh", "-c", script], env=env, check=True, timeout=30)
    return log.read_text().splitlines()


@pytest.mark.parametrize("rt", [CTR, UNIT], ids=["container", "unit"])
def test_a_worker_that_ignores_sigterm_gets_sigint_after_the_grace(tmp_path: Path, rt: object) -> None:
    script = rt.stop_script("glm5-c-r0", head=False, drain=5, grace=0.5)  # type: ignore[attr-defined]
    calls = _run_stop(tmp_path, script, exits_on="INT")
    kills = [c for c in calls if c.startswith("kill")]
    assert len(kills) == 1 and "INT" in kills[0]  # SIGINT once, never SIGKILL


@pytest.mark.parametrize("rt", [CTR, UNIT], ids=["container", "unit"])
def test_a_worker_deaf_to_sigint_is_killed(tmp_path: Path, rt: object) -> None:
    script = rt.stop_script("glm5-c-r0", head=False, drain=5, grace=0.5)  # type: ignore[attr-defined]
    calls = _run_stop(tmp_path, script, exits_on="KILL")
    kills = [c.split()[2] for c in calls if c.startswith("kill")]
    assert kills[0] in ("INT", "SIGINT") and kills[-1] in ("KILL", "SIGKILL")


@pytest.mark.parametrize("rt", [CTR, UNIT], ids=["container", "unit"])
def test_a_head_drains_with_sigterm(tmp_path: Path, rt: object) -> None:
    script = rt.stop_script("glm5-c-r0", head=True, drain=7, grace=0.5)  # type: ignore[attr-defined]
    calls = _run_stop(tmp_path, script, exits_on="TERM")
    assert any(c.startswith("stop") for c in calls) and not any(c.startswith("kill") for c in calls)
    assert "_term 7" in script and (rt is UNIT or "stop -t 7 glm5-c-r0" in calls)


def test_a_router_shaped_service_fits_both_runtimes() -> None:
    svc = Service(stem=router_stem("c"), description="GLM-5 SGLang router c",
                  argv=("python3", "-m", "sglang_router.launch_router", "--port", "8000"),
                  env_files=("/etc/glm5cluster/c/router.env",), stop_timeout=30, image="lmsysorg/sglang:v0.5.23")
    unit = UNIT.install(svc)
    assert unit.uploads[0].dest == "/etc/systemd/system/glm5-c-router.service"
    assert "Description=GLM-5 SGLang router c" in unit.definition and "TimeoutStopSec=30" in unit.definition
    ctr = CTR.install(svc)
    argv = CTR.run_argv(svc, ctr.digest)
    assert "--gpus" not in argv and "--device" not in argv and argv[argv.index("--name") + 1] == "glm5-c-router"
    assert ctr.definition.endswith("lmsysorg/sglang:v0.5.23 python3 -m sglang_router.launch_router --port 8000")
    assert ctr.digest != CTR.install(svc, b"other env").digest
    # the survey finds it, as the router (no replica), in either runtime
    found = parse_survey("c", "unit\tglm5-c-router.service\tactive\tGLM-5 SGLang router c\n"
                              "container\tglm5-c-router\trunning\t\tc\tabc\n")
    assert [(i.kind, i.replica) for i in found.items] == [("unit", None), ("container", None)]


def test_logs_per_runtime() -> None:
    assert UNIT.log_script("glm5-c-r0.service", lines=5, since=None, follow=False) == \
        "journalctl -u glm5-c-r0.service -o short-iso-precise --no-pager -q -n 5"
    assert CTR.log_script("glm5-c-r0", lines=None, since=12.5, follow=True) == \
        "docker logs --timestamps --since 12.500 --follow glm5-c-r0 2>&1"
    assert "_SYSTEMD_INVOCATION_ID" in UNIT.run_log_script("u", skip=3) and "tail -n +4" in UNIT.run_log_script("u", skip=3)
    assert "tail -n 300" in CTR.run_log_script("c", tail=300)
    line = "2026-01-05T10:00:00.123456789Z The server is fired up and ready to roll!"
    assert CTR.parse_log(line)[0].text == "The server is fired up and ready to roll!"
