"""Docker: installed or not, daemon up or down, versions and registered runtimes (``docker info``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact


@dataclass(frozen=True)
class DockerInfo:
    installed: bool  # the docker client is on PATH
    daemon: str  # "up" | "down" | "denied" (no permission on the socket) | "absent" | "error"
    client_version: str | None = None
    server_version: str | None = None
    runtimes: tuple[str, ...] = ()
    default_runtime: str | None = None
    cgroup_driver: str | None = None
    detail: str = ""

    @property
    def up(self) -> bool:
        return self.daemon == "up"

    @property
    def nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes


def _field(text: str, key: str) -> str | None:
    m = re.search(rf"^\s*{re.escape(key)}:\s*(.+?)\s*$", text, re.M)
    return m.group(1) if m else None


def parse_docker_info(result: CommandResult) -> DockerInfo:
    if result.exit_code == 127:
        return DockerInfo(installed=False, daemon="absent")
    text = result.stdout
    client, _, server = text.partition("\nServer:")
    client_version = _field(client, "Version")
    errors = result.stderr + "\n" + server
    if "Cannot connect to the Docker daemon" in errors or "Is the docker daemon running" in errors:
        return DockerInfo(True, "down", client_version, detail="Cannot connect to the Docker daemon")
    if "permission denied" in errors.lower():
        return DockerInfo(True, "denied", client_version, detail="permission denied on the Docker socket")
    server_version = _field(server, "Server Version")
    if server_version is None:
        detail = (result.stderr.strip() or server.strip()).splitlines()
        return DockerInfo(True, "error", client_version, detail=detail[0] if detail else f"exit code {result.exit_code}")
    runtimes = tuple((_field(server, "Runtimes") or "").split())
    return DockerInfo(
        installed=True,
        daemon="up",
        client_version=client_version,
        server_version=server_version,
        runtimes=runtimes,
        default_runtime=_field(server, "Default Runtime"),
        cgroup_driver=_field(server, "Cgroup Driver"),
    )


class DockerFact(Fact[DockerInfo]):
    """``docker info`` (text): distinguishes no docker (127), daemon down, and socket denied."""

    name = "docker"

    def command(self) -> Shell:
        return Shell.sh("command -v docker >/dev/null 2>&1 || exit 127\ntimeout 20 docker info", sudo=True)

    def parse(self, result: CommandResult) -> DockerInfo:
        return parse_docker_info(result)
