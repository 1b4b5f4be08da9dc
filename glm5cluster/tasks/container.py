"""Docker engine (when missing) and the NVIDIA container toolkit, for the docker runtime."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from glm5cluster.commands import Command, Shell
from glm5cluster.facts.packages import StackFact, StackState
from glm5cluster.model.inventory import Runtime
from glm5cluster.tasks import gpu_stack as gs
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Outcome, Params, Skip, Task

TOOLKIT_BASE = "https://nvidia.github.io/libnvidia-container"
TOOLKIT_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                    "libnvidia-container-tools", "libnvidia-container1")


class ContainerParams(Params):
    """Normally empty: the inventory's ``serving.runtime`` and ``stack`` decide."""


def docker_engine_packages(st: StackState) -> list[str]:
    if st.family == "rhel":
        return ["moby-engine", "moby-cli"] if st.os_id == "fedora" else ["docker-ce", "docker-ce-cli", "containerd.io"]
    return ["docker.io"]


class DockerEngine(Task[ContainerParams]):
    """Install Docker when missing (distro ``docker.io`` on Ubuntu/Debian; ``docker-ce`` on EL9)."""

    name = "gpu.docker_engine"
    Params = ContainerParams

    def facts(self, params: ContainerParams, ctx: HostContext) -> Mapping[str, StackFact]:
        return {"stack": StackFact()}

    def plan(self, params: ContainerParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        if gs.runtime_of(ctx) != Runtime.DOCKER:
            return Skip("serving.runtime is venv: no container engine needed")
        st: StackState = facts["stack"]
        if st.docker and st.active("docker"):
            return NoOp("docker installed and running")
        cmds: list[Command] = []
        if not st.docker:
            if not gs.stack_of(ctx).manage:
                return Fail("docker is not installed", "stack.manage is false: install Docker yourself")
            if st.family == "rhel":
                cmds.append(Shell.cmd("dnf", "config-manager", "--add-repo",
                                      "https://download.docker.com/linux/rhel/docker-ce.repo", sudo=True))
            else:
                spec = gs.stack_of(ctx)
                if spec.apt_mirror:
                    cmds += gs.apt_mirror_commands(st, spec.apt_mirror)
                cmds.append(gs.apt_update())
            cmds.append(gs.install(st, docker_engine_packages(st), "install Docker engine"))
        cmds.append(Shell.cmd("systemctl", "enable", "--now", "docker", sudo=True, description="start docker"))
        return Change(cmds, "install and start Docker" if not st.docker else "start Docker")


def toolkit_repo_commands(st: StackState, ctx: Any) -> list[Command]:
    spec = gs.stack_of(ctx)
    repo = spec.nvidia.container_toolkit_repo
    if repo is None and spec.apt_mirror is not None:
        return list(gs.apt_mirror_commands(st, spec.apt_mirror))
    base = (repo or TOOLKIT_BASE).rstrip("/")
    if st.family == "rhel":
        if any("nvidia-container-toolkit" in r for r in st.yum_repos):
            return []
        script = (f"curl -fsSL {shlex.quote(base + '/stable/rpm/nvidia-container-toolkit.repo')} "
                  "-o /etc/yum.repos.d/nvidia-container-toolkit.repo")
        return [Shell.sh(script, sudo=True, description="add the NVIDIA container toolkit repository")]
    if any(base in ln for ln in st.apt_sources):
        return []
    script = (
        "set -e; "
        f"curl -fsSL {shlex.quote(base + '/gpgkey')} | gpg --batch --yes --dearmor -o {TOOLKIT_KEYRING}; "
        f"curl -fsSL {shlex.quote(base + '/stable/deb/nvidia-container-toolkit.list')} | "
        f"sed 's#deb https://#deb [signed-by={TOOLKIT_KEYRING}] https://#g' | "
        f"sed 's#https://nvidia.github.io/libnvidia-container#{base}#g' "
        "> /etc/apt/sources.list.d/nvidia-container-toolkit.list"
    )
    return [Shell.sh(script, sudo=True, timeout=120, description="add the NVIDIA container toolkit repository"),
            gs.apt_update()]


class NvidiaContainerToolkit(Task[ContainerParams]):
    """Container toolkit (pinned when the inventory names a version), ``nvidia-ctk runtime configure
    --runtime=docker`` and a docker restart."""

    name = "gpu.nvidia_container_toolkit"
    Params = ContainerParams

    def facts(self, params: ContainerParams, ctx: HostContext) -> Mapping[str, StackFact]:
        return {"stack": StackFact()}

    def plan(self, params: ContainerParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        if gs.vendor_of(ctx) != "nvidia":
            return Skip("not an NVIDIA host")
        if gs.runtime_of(ctx) != Runtime.DOCKER:
            return Skip("serving.runtime is venv: no container toolkit needed")
        st: StackState = facts["stack"]
        version = gs.stack_of(ctx).nvidia.container_toolkit_version
        installed = st.packages.get("nvidia-container-toolkit")
        right_version = installed is not None and (version is None or gs.upstream(installed) == version)
        if right_version and st.docker_nvidia_runtime:
            return NoOp(f"nvidia-container-toolkit {gs.upstream(installed or '')} installed, docker runtime configured")
        cmds: list[Command] = []
        if not right_version:
            if not gs.stack_of(ctx).manage:
                return Fail("nvidia-container-toolkit missing or at the wrong version",
                            "stack.manage is false: install it yourself")
            cmds += toolkit_repo_commands(st, ctx)
            sep = "-" if st.family == "rhel" else "="
            pkgs = [f"{p}{sep}{version}-1" if version else p for p in TOOLKIT_PACKAGES]
            cmds += gs.unhold(st, TOOLKIT_PACKAGES)
            cmds.append(gs.install(st, pkgs, "install the NVIDIA container toolkit"))
            if version:
                from dataclasses import replace
                cmds += gs.hold(replace(st, held=frozenset()), TOOLKIT_PACKAGES)
        cmds.append(Shell.cmd("nvidia-ctk", "runtime", "configure", "--runtime=docker", sudo=True))
        cmds.append(Shell.cmd("systemctl", "restart", "docker", sudo=True, description="restart docker"))
        return Change(cmds, "NVIDIA container toolkit installed and configured for docker")
