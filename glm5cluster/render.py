"""Rendering: files through one jinja2 environment (StrictUndefined, no autoescape), one typed
variables record per template (the ``docker run`` argv is built by ``runtime.container``).

Templates live in the repository's top-level ``templates/``; an installed package finds the
same files through ``glm5cluster/data/templates`` (a symlink in the source tree, copied as
package data by setuptools). Every value that reaches a file or a command is encoded for the
reader that will parse it: systemd's ``ExecStart=`` rules (``systemd_quote``), shell-style
quoting for ``EnvironmentFile=`` (also valid POSIX sh), docker's raw ``--env-file`` lines.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from glm5cluster.errors import PlanError
from glm5cluster.model.inventory import Inventory
from glm5cluster.sglang.args import build_args
from glm5cluster.sglang.launcher import entry_argv
from glm5cluster.topology import RankAssignment, Replica, Topology

CONFIG_DIR = "/etc/glm5cluster"
TIMEOUT_STOP_SEC = 300
_PKG = Path(__file__).resolve().parent
TEMPLATE_DIRS = (_PKG.parent / "templates", _PKG / "data" / "templates")
EnvDialect = Literal["systemd", "docker"]


def template_dir() -> Path:
    for d in TEMPLATE_DIRS:
        if (d / "sglang.service.j2").is_file():
            return d
    raise FileNotFoundError(f"glm5cluster templates not found in {', '.join(map(str, TEMPLATE_DIRS))}")


if TYPE_CHECKING:
    import jinja2

_ENV: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    import jinja2  # imported on first use: commands that render nothing start faster
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_dir())),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=False,
        )
    return _ENV


# ---- names and paths -------------------------------------------------------------------------
def unit_stem(cluster: str, replica_index: int) -> str:
    """``glm5-<cluster>-r<i>``: replica i's service (unit ``<stem>.service`` or container ``<stem>``;
    the names are the runtime's, see ``glm5cluster.runtime``)."""
    return f"glm5-{cluster}-r{replica_index}"


def env_file_path(cluster: str, replica_index: int) -> str:
    return f"{CONFIG_DIR}/{cluster}/r{replica_index}.env"


def secrets_file_path(cluster: str) -> str:
    """Written separately, mode 0600, owner root; holds the values of ``secret_names``."""
    return f"{CONFIG_DIR}/{cluster}/secrets.env"


# ---- environment -----------------------------------------------------------------------------
def node_env(inventory: Inventory, rank: RankAssignment,
             discovered: Mapping[str, str] | None = None) -> dict[str, str]:
    """Plain (non-secret) environment of one rank: NCCL/Gloo interface, then serving.env, then
    what the launch discovered on the node for what neither pins (``tasks/node_fabric.py``)."""
    env: dict[str, str] = {}
    if rank.node.interface:
        env["NCCL_SOCKET_IFNAME"] = rank.node.interface
        env["GLOO_SOCKET_IFNAME"] = rank.node.interface
    env.update(inventory.serving.env)
    for k, v in (discovered or {}).items():
        env.setdefault(k, v)
    return env


def secret_names(inventory: Inventory, rank: RankAssignment) -> tuple[str, ...]:
    """Names of the secret variables a rank expects (values live only in the secrets file).

    Only the head needs the API key; weights are read from ``weights_dir``, so no rank needs
    the hub token at serve time.
    """
    key = inventory.serving.secrets.api_key_env
    return (key,) if key and rank.is_head else ()


def encode_env_line(name: str, value: str, dialect: EnvDialect) -> str:
    if dialect == "systemd":
        # systemd's EnvironmentFile= parser and POSIX sh read shell single-quoting the same way.
        return f"{name}={shlex.quote(value)}"
    if "\n" in value or "\r" in value or "\x00" in value:
        raise PlanError(f"environment value of {name} has a line break, which docker's --env-file "
                        "cannot carry", hint="remove the line break", path=f"serving.env.{name}")
    return f"{name}={value}"


@dataclass(frozen=True)
class EnvFileVars:
    cluster: str
    purpose: str
    replica: int
    node: str
    node_rank: int
    secret_names: tuple[str, ...]
    secrets_path: str
    lines: tuple[str, ...]


def env_file_vars(inventory: Inventory, replica: Replica, rank: RankAssignment,
                  dialect: EnvDialect, discovered: Mapping[str, str] | None = None) -> EnvFileVars:
    env = node_env(inventory, rank, discovered)
    return EnvFileVars(
        cluster=inventory.cluster.name,
        purpose=f"SGLang environment ({dialect})",
        replica=replica.index,
        node=rank.node.name,
        node_rank=rank.node_rank,
        secret_names=secret_names(inventory, rank),
        secrets_path=secrets_file_path(inventory.cluster.name),
        lines=tuple(encode_env_line(k, v, dialect) for k, v in env.items()),
    )


def render_env_file(v: EnvFileVars) -> str:
    return environment().get_template("node.env.j2").render(v=v)


# ---- systemd ---------------------------------------------------------------------------------
_C_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def systemd_quote(arg: str) -> str:
    """One argument for ``ExecStart=``: double-quoted, with systemd's three escapings.

    ``%`` -> ``%%`` (specifiers), ``$`` -> ``$$`` (environment expansion), and C escapes for
    backslash, double quote and control characters (word splitting / unquoting).
    """
    out = []
    for ch in arg:
        if ch == "%":
            out.append("%%")
        elif ch == "$":
            out.append("$$")
        elif ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def systemd_command_line(argv: list[str]) -> str:
    return " ".join(systemd_quote(a) for a in argv)


def server_argv(inventory: Inventory, topology: Topology, replica: Replica, rank: RankAssignment,
                python: str, secrets_file: str | None = None) -> list[str]:
    """The full server command of one rank: entry point (or API-key launcher) + build_args."""
    key = inventory.serving.secrets.api_key_env if rank.is_head else None
    return entry_argv(python, key, secrets_file if key else None) + build_args(inventory, topology, replica, rank)


@dataclass(frozen=True)
class UnitVars:
    """A systemd unit running one program (the venv runtime's services: ranks, router)."""

    description: str
    user: str
    env_files: tuple[str, ...]
    exec_start: str  # already quoted for systemd (systemd_command_line)
    timeout_stop_sec: int
    unit_stem: str  # SyslogIdentifier
    memlock_unlimited: bool = True  # LimitMEMLOCK=infinity (serving.memlock_unlimited)
    environment: tuple[str, ...] = ()  # ``Environment=`` values, already quoted (systemd_quote)
    restart_on_failure: bool = False  # Restart=on-failure (the router) instead of Restart=no (ranks)


def rank_description(cluster: str, replica: Replica, rank: RankAssignment) -> str:
    """A rank's unit description; ``runtime.survey`` reads ``rank N/M`` back from it."""
    return f"GLM-5 SGLang {cluster} replica {replica.index} rank {rank.node_rank}/{replica.nnodes}"


def render_unit(v: UnitVars) -> str:
    return environment().get_template("sglang.service.j2").render(v=v)
