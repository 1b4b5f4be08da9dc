"""A rank's unit or container as the launch procedure sees it: running or not, and the config
digest it was started with (a stamp next to the env file naming the systemd invocation, or a
container label).

NOTE: reconstructed by the status/logs/down helper from its call sites in ``tasks/launch.py``
and ``engine/procedures/launch.py`` after an accidental overwrite; the owner should check it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

CONFIG_LABEL = "glm5cluster.config"
_SHOW = "@@glm5cluster:serving:show@@"
_STAMP = "@@glm5cluster:serving:stamp@@"
_INSPECT = "@@glm5cluster:serving:inspect@@"


@dataclass(frozen=True)
class RankState:
    exists: bool  # the unit file / container exists
    running: bool
    detail: str = ""  # systemd ActiveState/SubState or the container status
    exit_code: int | None = None
    digest: str = ""  # the config digest of the running instance ("" when unknown)


def state_script(runtime: str, target: str, stamp_path: str) -> str:
    """One read-only script: the unit's state and stamp (venv) or the container's (docker)."""
    q = shlex.quote(target)
    if runtime == "docker":
        fmt = "{{json .State}}\t{{index .Config.Labels \"" + CONFIG_LABEL + "\"}}"
        return f"echo '{_INSPECT}'; docker inspect --format {shlex.quote(fmt)} -- {q} 2>/dev/null; true"
    return (f"echo '{_SHOW}'; systemctl show -p LoadState,ActiveState,SubState,ExecMainStatus,"
            f"ExecMainCode,InvocationID -- {q}; echo '{_STAMP}'; cat -- {shlex.quote(stamp_path)} "
            f"2>/dev/null; true")


def _parse_docker(text: str) -> RankState:
    line = text.strip().splitlines()[-1] if text.strip() else ""
    if not line:
        return RankState(False, False, "no container")
    state_json, _, label = line.partition("\t")
    try:
        st = json.loads(state_json)
    except ValueError:
        return RankState(False, False, "unreadable container state")
    status = str(st.get("Status", ""))
    running = bool(st.get("Running"))
    code = None if running else int(st.get("ExitCode") or 0)
    digest = label.strip()
    return RankState(True, running, status, code, "" if digest == "<no value>" else digest)


def _parse_systemd(text: str) -> RankState:
    show, _, stamp = text.partition(_STAMP)
    props: dict[str, str] = {}
    for line in show.replace(_SHOW, "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    exists = props.get("LoadState", "not-found") not in ("not-found", "")
    active = props.get("ActiveState", "")
    running = active in ("active", "activating", "reloading")
    code: int | None = None
    if not running and props.get("ExecMainCode") == "1":
        try:
            code = int(props.get("ExecMainStatus", ""))
        except ValueError:
            code = None
    digest = ""
    parts = stamp.split()
    invocation = props.get("InvocationID", "")
    if running and len(parts) >= 2 and invocation and parts[1] == invocation:
        digest = parts[0]
    detail = f"{active}/{props.get('SubState', '')}" if active else "unknown"
    return RankState(exists, running, detail, code, digest)


def parse_state(runtime: str, stdout: str) -> RankState:
    return _parse_docker(stdout.split(_INSPECT, 1)[-1]) if runtime == "docker" else _parse_systemd(stdout)
