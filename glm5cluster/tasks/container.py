"""Docker engine (when missing) and the NVIDIA container toolkit, for the docker runtime."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from glm5cluster.commands import Command, Shell, Upload
from glm5cluster.facts.packages import StackFact, StackState
from glm5cluster.tasks import gpu_stack as gs
from glm5cluster.tasks import trust
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


DAEMON_JSON = "/etc/docker/daemon.json"


def daemon_json_change(st: StackState, insecure: Sequence[str]) -> str | None:
    """The new daemon.json when registries the inventory names are missing from its
    ``insecure-registries`` (every other key kept), else None."""
    if not insecure:
        return None
    try:
        doc = json.loads(st.daemon_json or "{}")
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return None  # not ours to rewrite: gpu.verify / docker itself will complain
    have = list(doc.get("insecure-registries") or [])
    missing = [r for r in insecure if r not in have]
    if not missing:
        return None
    doc["insecure-registries"] = have + missing
    return json.dumps(doc, indent=2) + "\n"


class DockerEngine(Task[ContainerParams]):
    """Install Docker when missing (distro ``docker.io`` on Ubuntu/Debian; ``docker-ce`` on EL9)."""

    name = "gpu.docker_engine"
    Params = ContainerParams

    def facts(self, params: ContainerParams, ctx: HostContext) -> Mapping[str, StackFact]:
        return {"stack": StackFact()}

    def plan(self, params: ContainerParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        rt = gs.runtime_of(ctx)
        if not rt.needs_container_engine:
            return Skip(f"serving.runtime is {rt.mode}: no container engine needed")
        st: StackState = facts["stack"]
        daemon = daemon_json_change(st, gs.stack_of(ctx).insecure_registries)
        if st.docker and st.active("docker") and daemon is None:
            return NoOp("docker installed and running")
        cmds: list[Command] = []
        if not st.docker:
            if not gs.stack_of(ctx).manage:
                return Fail("docker is not installed", "stack.manage is false: install Docker yourself")
            if st.family == "rhel":
                cmds.append(Shell.cmd("dnf", "config-manager", "--add-repo",
                                      "https://download.docker.com/linux/rhel/docker-ce.repo", sudo=True))
            else:
                cmds.append(gs.apt_update())
            cmds.append(gs.install(st, docker_engine_packages(st), "install Docker engine"))
        if daemon is not None:
            cmds.append(Upload(DAEMON_JSON, daemon.encode(), 0o644, sudo=True,
                               description="docker: insecure registries from the inventory"))
            cmds.append(Shell.cmd("systemctl", "enable", "docker", sudo=True))
            cmds.append(Shell.cmd("systemctl", "restart", "docker", sudo=True, description="restart docker"))
            return Change(cmds, ("install Docker, " if not st.docker else "")
                          + f"allow insecure registries {', '.join(gs.stack_of(ctx).insecure_registries)}")
        cmds.append(Shell.cmd("systemctl", "enable", "--now", "docker", sudo=True, description="start docker"))
        return Change(cmds, "install and start Docker" if not st.docker else "start Docker")


TOOLKIT_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"


def toolkit_repo_commands(st: StackState, ctx: Any) -> list[Command]:
    """The toolkit repository. ``stack.nvidia.container_toolkit_repo`` mirrors
    ``https://nvidia.github.io/libnvidia-container`` (``gpgkey`` and ``stable/deb/$(ARCH)``
    under it). The list line is written as NVIDIA's ``nvidia-container-toolkit.list`` has it,
    with ``signed-by`` added (install-guide.md)."""
    base = (gs.stack_of(ctx).nvidia.container_toolkit_repo or TOOLKIT_BASE).rstrip("/")
    if st.family == "rhel":
        if any("nvidia-container-toolkit" in r for r in st.yum_repos):
            return []
        script = (f"curl -fsSL {shlex.quote(base + '/stable/rpm/nvidia-container-toolkit.repo')} "
                  "-o /etc/yum.repos.d/nvidia-container-toolkit.repo")
        return [Shell.sh(script, sudo=True, description="add the NVIDIA container toolkit repository")]
    if any(base in ln for ln in st.apt_sources):
        return []
    line = f"deb [signed-by={TOOLKIT_KEYRING}] {base}/stable/deb/$(ARCH) /"
    pins = trust.toolkit_pins(gs.stack_of(ctx).nvidia)
    script = (
        "set -e; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; "
        f"curl -fsSL {shlex.quote(base + '/gpgkey')} -o \"$t/key\"; "
        + trust.keycheck('"$t/key"', TOOLKIT_KEYRING, pins)
    )
    return [Shell.sh(script, sudo=True, timeout=120,
                     description=f"install the container toolkit key from {base} (pinned: {', '.join(p[-8:] for p in pins)})"),
            Upload(TOOLKIT_LIST, (line + "\n").encode(), 0o644, sudo=True,
                   description="add the NVIDIA container toolkit repository"),
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
        rt = gs.runtime_of(ctx)
        if not rt.needs_container_engine:
            return Skip(f"serving.runtime is {rt.mode}: no container toolkit needed")
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
