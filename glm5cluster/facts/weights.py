"""The weights tools on a node: the tools venv (huggingface_hub), the agent script, the ssh client
(node-to-node copies)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact


@dataclass(frozen=True)
class ToolsState:
    python: bool  # the tools venv's python runs
    hub_version: str | None  # huggingface_hub version in the tools venv
    agent_sha256: str | None
    ssh: bool  # the OpenSSH client (a receiver streams from its source over ssh)
    venv_module: bool  # the system python3 can create venvs (python3-venv on Debian/Ubuntu)
    family: str  # debian | rhel | unknown


class ToolsFact(Fact[ToolsState]):
    name = "weights_tools"

    def __init__(self, tools_dir: str, agent_path: str) -> None:
        self.tools_dir = tools_dir
        self.agent_path = agent_path

    def command(self) -> Shell:
        py = shlex.quote(f"{self.tools_dir}/bin/python")
        script = (
            f"echo \"hub=$({py} -c 'import huggingface_hub as h; print(h.__version__)' 2>/dev/null)\"\n"
            f"echo \"agent=$(sha256sum {shlex.quote(self.agent_path)} 2>/dev/null | cut -d' ' -f1)\"\n"
            "echo \"ssh=$(command -v ssh)\"\n"
            "echo \"venv=$(python3 -c 'import ensurepip, venv; print(1)' 2>/dev/null)\"\n"
            "if command -v apt-get >/dev/null; then echo family=debian; "
            "elif command -v dnf >/dev/null; then echo family=rhel; else echo family=unknown; fi\n"
        )
        return Shell.sh(script, description="probe weights tools")

    def parse(self, result: CommandResult) -> ToolsState:
        return parse_tools(result.stdout)


def parse_tools(text: str) -> ToolsState:
    kv = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        kv[k.strip()] = v.strip()
    return ToolsState(
        python=bool(kv.get("hub")),
        hub_version=kv.get("hub") or None,
        agent_sha256=kv.get("agent") or None,
        ssh=bool(kv.get("ssh")),
        venv_module=kv.get("venv") == "1",
        family=kv.get("family", "unknown"),
    )
