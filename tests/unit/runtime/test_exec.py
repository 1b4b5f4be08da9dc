"""The seam's "beside a running service" methods: the argv prefix that runs the runtime's
python where the service runs, and sharing a host directory with it (bench uses both)."""

from __future__ import annotations

from glm5cluster.runtime import ContainerRuntime, UnitRuntime


def test_unit_runs_the_venv_python_on_the_host() -> None:
    rt = UnitRuntime("/opt/v")
    assert rt.exec_argv("glm5-c-r0.service", env=("OPENAI_API_KEY",), workdir="/tmp/x") == ["/opt/v/bin/python"]
    assert rt.share_dir_script("glm5-c-r0.service", "/tmp/x") == ""
    assert rt.unshare_dir_script("glm5-c-r0.service", "/tmp/x") == ""


def test_container_execs_into_the_running_container_with_variables_by_name() -> None:
    rt = ContainerRuntime("0.5.23")
    assert rt.exec_argv("glm5-c-r0") == ["docker", "exec", "glm5-c-r0", "python3"]
    assert rt.exec_argv("glm5-c-r0", env=("OPENAI_API_KEY",), workdir="/tmp/b x") == [
        "docker", "exec", "-w", "/tmp/b x", "-e", "OPENAI_API_KEY", "glm5-c-r0", "python3"]
    assert rt.share_dir_script("glm5-c-r0", "/tmp/b x") == (
        "docker exec glm5-c-r0 mkdir -p -m 0700 '/tmp/b x' && docker cp '/tmp/b x/.' glm5-c-r0:'/tmp/b x'")
    assert rt.unshare_dir_script("glm5-c-r0", "/tmp/b x") == "docker exec glm5-c-r0 rm -rf '/tmp/b x' || true"
