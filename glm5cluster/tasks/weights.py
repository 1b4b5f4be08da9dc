"""Weights: the tools a node needs (task ``weights.tools``) and the pure planning pieces the
``weights.stage`` procedure uses (token, disk check, who copies from whom, progress text)."""

from __future__ import annotations

import hashlib
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glm5cluster.commands import Command, Secret, Shell, Upload
from glm5cluster.facts.weights import ToolsFact, ToolsState
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Outcome, Params, Task

TOOLS_DIR = "/opt/glm5cluster/tools"
AGENT_PATH = f"{TOOLS_DIR}/bin/glm5-weights-agent.py"
HUB_REQUIREMENT = "huggingface_hub>=0.30"


def agent_bytes() -> bytes:
    """The uploaded agent: one file built from ``tasks/agents/weights/`` (``agents.build``)."""
    from glm5cluster.tasks import agents

    return agents.source("weights_agent").encode()


def agent_sha256() -> str:
    return hashlib.sha256(agent_bytes()).hexdigest()


class ToolsParams(Params):
    tools_dir: str = TOOLS_DIR
    package_index: str | None = None  # default: serving.package_index, else PyPI


def pip_index_args(index: str | None) -> list[str]:
    if not index:
        return []
    host = index.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    args = ["--index-url", index]
    if index.startswith("http://"):
        args += ["--trusted-host", host]
    return args


class WeightsTools(Task[ToolsParams]):
    """A tools venv with huggingface_hub (from the same index as sglang), the agent, the ssh client."""

    name = "weights.tools"
    Params = ToolsParams

    def facts(self, params: ToolsParams, ctx: HostContext) -> Mapping[str, ToolsFact]:
        return {"tools": ToolsFact(params.tools_dir, f"{params.tools_dir}/bin/glm5-weights-agent.py")}

    def plan(self, params: ToolsParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        st: ToolsState = facts["tools"]
        agent = f"{params.tools_dir}/bin/glm5-weights-agent.py"
        want = agent_sha256()
        if st.python and st.ssh and st.agent_sha256 == want:
            return NoOp(f"tools venv (huggingface_hub {st.hub_version}), agent and ssh client present")
        cmds: list[Command] = []
        pkgs = [p for p, missing in (("openssh-client", not st.ssh), ("python3-venv", not st.venv_module)) if missing]
        if pkgs and st.family == "debian":
            cmds.append(Shell.cmd("apt-get", "install", "-y", "--no-install-recommends", *pkgs, sudo=True,
                                  env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=900, description=f"install {' '.join(pkgs)}"))
        elif "openssh-client" in pkgs and st.family == "rhel":
            cmds.append(Shell.cmd("dnf", "install", "-y", "openssh-clients", sudo=True, timeout=900))
        elif pkgs:
            return Fail(f"{' '.join(pkgs)} missing and no known package manager", "install them on the node")
        if not st.python:
            index = params.package_index or _inventory_index(ctx)
            cmds.append(Shell.cmd("python3", "-m", "venv", params.tools_dir, sudo=True, description=f"create {params.tools_dir}"))
            cmds.append(Shell.cmd(f"{params.tools_dir}/bin/pip", "install", "--disable-pip-version-check", "-q",
                                  *pip_index_args(index), HUB_REQUIREMENT, sudo=True, timeout=1800,
                                  description="pip install huggingface_hub into the tools venv"))
        if st.agent_sha256 != want:
            cmds.append(Upload(agent, agent_bytes(), 0o755, sudo=True, description=f"install {agent}"))
        return Change(cmds, "weights tools: " + ", ".join(
            x for x, on in (("venv", not st.python), ("agent", st.agent_sha256 != want), ("packages", bool(pkgs))) if on))


def _inventory_index(ctx: Any) -> str | None:
    inv = getattr(ctx, "inventory", None)
    return inv.serving.package_index if inv is not None else None


# ---- pure planning pieces used by engine/procedures/weights.py ----

def token_env_name(inventory: Any) -> str | None:
    src = inventory.model.source
    return getattr(src, "token_env", None) or inventory.serving.secrets.hf_token_env


def hub_token(inventory: Any, environ: Mapping[str, str]) -> Secret | None:
    """The hub token, read on the controller from the variable the inventory names."""
    name = token_env_name(inventory)
    if not name or not environ.get(name):
        return None
    return Secret(name, environ[name])


def token_prelude() -> str:
    """Shell that moves one line of stdin into HF_TOKEN (environment only; never argv or disk)."""
    return 'IFS= read -r HF_TOKEN || true; if [ -n "$HF_TOKEN" ]; then export HF_TOKEN; else unset HF_TOKEN; fi; '


def margin_bytes(need: int) -> int:
    """Safety margin on top of what must be written: 1% plus 256 MiB (metadata, temp files)."""
    return need // 100 + (256 << 20) if need else 0


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def disk_problem(node: str, need: int, free: int, weights_dir: str) -> str | None:
    total = need + margin_bytes(need)
    if need and free < total:
        return (f"{node}: not enough disk at {weights_dir}: need {human(total)} "
                f"({human(need)} of weights + margin), free {human(free)}")
    return None


def fanout_parents(order: Sequence[str], fanout: int = 2) -> dict[str, str]:
    """Receivers -> the node each copies from: a tree rooted at ``order[0]`` (each node feeds at
    most ``fanout`` others), so a file moves on as soon as its parent has verified it."""
    return {order[i]: order[(i - 1) // fanout] for i in range(1, len(order))}


@dataclass(frozen=True)
class NodeNeeds:
    node: str
    missing: tuple[str, ...]  # file paths this node must (re)fetch


def source_order(needs: Sequence[NodeNeeds], seed: str) -> tuple[list[str], bool]:
    """(tree order rooted at a node holding everything, or at the seed; whether the root must
    download from the hub first). Nodes needing nothing only serve."""
    complete = [n.node for n in needs if not n.missing]
    receivers = [n.node for n in needs if n.missing]
    if complete:
        root = seed if seed in complete else complete[0]
        return [root] + receivers, False
    return [seed] + [r for r in receivers if r != seed], True


def progress_text(rec: Mapping[str, Any]) -> str:
    done, total = float(rec.get("done", 0)), float(rec.get("total", 0)) or 1.0
    rate = float(rec.get("rate") or 0.0)
    eta = rec.get("eta")
    eta_s = "-" if eta is None or not math.isfinite(float(eta)) else f"{int(float(eta)) // 60}m{int(float(eta)) % 60:02d}s"
    return (f"weights {rec.get('phase', '')} {human(done)}/{human(total)} ({100 * done / total:.0f}%) "
            f"{human(rate)}/s ETA {eta_s} files {rec.get('files_done', 0)}/{rec.get('files', 0)}")


def agent_cmd(tools_dir: str, *args: str) -> str:
    return shlex.join([f"{tools_dir}/bin/python", f"{tools_dir}/bin/glm5-weights-agent.py", *args])


# ---- the run's transfer key in authorized_keys (sshd(8) AUTHORIZED_KEYS FILE FORMAT) ----

def authorized_option(value: str) -> str:
    """``value`` double-quoted for an authorized_keys option. sshd's only escape inside the
    quotes is ``\\"`` (OpenSSH misc.c ``opt_dequote``: a backslash before any other character
    is literal), so ``"`` is escaped, and a line break, NUL or a trailing backslash (which would
    escape the closing quote) is refused."""
    if any(c in value for c in "\n\r\0") or value.endswith("\\"):
        raise ValueError(f"{value!r} cannot be written into authorized_keys (line break, NUL or trailing backslash)")
    return '"' + value.replace('"', '\\"') + '"'


def is_address(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def from_addresses(names: Sequence[str], resolved: Mapping[str, Sequence[str]]) -> list[str]:
    """The addresses for ``from=``: sshd matches the client's ADDRESS (``UseDNS no`` is the
    default), so names are replaced by what they resolve to on the source node."""
    import ipaddress

    out: list[str] = []
    for name in names:
        try:
            found = [str(ipaddress.ip_address(name.strip("[]")))]
        except ValueError:
            found = []
            for a in resolved.get(name, ()):
                try:
                    found.append(str(ipaddress.ip_address(a)))
                except ValueError:
                    continue
        if not found:
            raise ValueError(f"{name} does not resolve to an address on the source node")
        out += [a for a in found if a not in out]
    return out


def resolve_script(names: Sequence[str]) -> str:
    """Shell for the source node: ``== name`` then its addresses (``getent ahosts``), per name."""
    return "; ".join(f"echo {shlex.quote('== ' + n)}; getent ahosts {shlex.quote(n)} || true" for n in names)


def parse_resolved(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("== "):
            cur = out.setdefault(line[3:].strip(), [])
        elif cur is not None and line.split():
            addr = line.split()[0]
            if addr not in cur:
                cur.append(addr)
    return out


def authorized_key_line(pub: str, gate: str, addresses: Sequence[str]) -> str:
    """``restrict`` (no forwarding, pty, X11, agent, rc), only from the receivers' addresses,
    only the gate command; ``expiry-time`` is prepended on the node (its local time)."""
    return f"restrict,from={authorized_option(','.join(addresses))},command={authorized_option(gate)} {pub}"


def expiry_prefix_script(expires_epoch: int) -> str:
    """Shell printing ``expiry-time="YYYYMMDDHHMMSS",`` in the node's local time (how sshd reads it)."""
    return f"date -d @{int(expires_epoch)} +'expiry-time=\"%Y%m%d%H%M%S\",'"


def kill_agent_script(pid_file: str) -> str:
    """Shell: stop the agent a pid file names, only if that pid still IS the agent (a stale file's
    number may belong to another process by now), then remove the file."""
    q = shlex.quote(pid_file)
    return (f"p=$(cat {q} 2>/dev/null); case \"$p\" in ''|*[!0-9]*) ;; *) "
            f"if tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q glm5-weights-agent; then "
            "kill \"$p\" 2>/dev/null; sleep 1; fi;; esac; "
            f"rm -f {q}; ")
