"""What runs now on a node for one replica: the SGLang unit/container state, its log, and the
node-side inputs preflight compares across ranks (port holders, SGLang version, weights stamp).

Each fact is a command plus a pure parser (house rule 2). The log of a rank is read from the
current run of its unit (``journalctl _SYSTEMD_INVOCATION_ID=...``) or its container
(``docker logs``), skipping the lines already seen (``tail -n +K``).
(Owned by the launch/readiness work: engine/procedures/{launch,readiness,preflight}.py.)
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import datetime

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact

CONFIG_LABEL = "glm5cluster.config"
LOG_MARK = "@@glm5cluster:log@@"
MANIFEST = ".glm5cluster-manifest.json"
_PROPS = "LoadState,ActiveState,SubState,InvocationID,MainPID,ExecMainStatus,ExecMainStartTimestamp,ExecMainExitTimestamp"


@dataclass(frozen=True)
class RankState:
    """One rank's unit (venv) or container (docker) as it is now."""

    exists: bool
    running: bool
    exit_code: int | None = None
    started_at: float | None = None  # epoch seconds on the node
    exited_at: float | None = None
    identity: str = ""  # systemd InvocationID, or the container id
    digest: str = ""  # config digest the running instance was started with
    now: float | None = None  # the node's clock when read
    detail: str = ""  # "active/running", "failed/failed", "exited", ...

    def current(self, digest: str) -> bool:
        return self.running and bool(digest) and self.digest == digest


def epoch(value: str) -> float | None:
    """systemd ``--timestamp=us+utc`` / ``@<unix>`` or docker RFC 3339 -> epoch seconds."""
    value = value.strip()
    if value.startswith("@") and value[1:].replace(".", "", 1).isdigit():
        return float(value[1:])
    if value.startswith("0001-") or not value or value == "n/a":
        return None
    parts = value.split()
    if len(parts) == 4 and parts[3] == "UTC":  # Sun 2026-11-29 21:40:47.123456 UTC
        try:
            return datetime.fromisoformat(f"{parts[1]} {parts[2]}+00:00").timestamp()
        except ValueError:
            return None
    try:  # docker: 2026-11-29T21:40:47.123456789Z
        head, _, frac = value.rstrip("Z").partition(".")
        return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac[:6] or "0"))
    except ValueError:
        return None


def state_script(runtime: str, name: str, stamp_path: str) -> str:
    """Shell that prints ``key=value`` lines describing the rank (see ``parse_state``)."""
    q = shlex.quote(name)
    if runtime == "docker":
        fmt = ("id={{.Id}}\nstatus={{.State.Status}}\nexit={{.State.ExitCode}}\nstarted={{.State.StartedAt}}\n"
               "finished={{.State.FinishedAt}}\ndigest={{index .Config.Labels \"" + CONFIG_LABEL + "\"}}")
        return (f"docker inspect -f {shlex.quote(fmt)} {q} 2>/dev/null || echo status=absent\n"
                "echo now=$(date +%s)\n")
    return (f"systemctl show -p {_PROPS} --timestamp=us+utc -- {q} 2>/dev/null "
            f"|| systemctl show -p {_PROPS} -- {q}\n"
            "echo now=$(date +%s)\n"
            f"echo \"stamp=$(cat {shlex.quote(stamp_path)} 2>/dev/null | head -n1)\"\n")


def parse_state(runtime: str, text: str) -> RankState:
    kv: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() not in kv:
            kv[k.strip()] = v.strip()
    now = float(kv["now"]) if kv.get("now", "").isdigit() else None
    if runtime == "docker":
        status = kv.get("status", "absent")
        if status == "absent":
            return RankState(False, False, now=now, detail="no container")
        code = kv.get("exit", "")
        running = status == "running"
        return RankState(True, running, None if running or not code.lstrip("-").isdigit() else int(code),
                         epoch(kv.get("started", "")), None if running else epoch(kv.get("finished", "")),
                         kv.get("id", ""), kv.get("digest", "").replace("<no value>", ""), now, status)
    load, active, sub = kv.get("LoadState", ""), kv.get("ActiveState", ""), kv.get("SubState", "")
    exists = load not in ("", "not-found")
    running = active in ("active", "activating", "reloading") and kv.get("MainPID", "0") not in ("", "0")
    status = kv.get("ExecMainStatus", "")
    started = epoch(kv.get("ExecMainStartTimestamp", ""))
    stamp_digest, _, stamp_id = kv.get("stamp", "").partition(" ")
    ident = kv.get("InvocationID", "")
    # the stamp counts only for the invocation it was written for (a later manual start has another id)
    digest = stamp_digest if ident and stamp_id == ident else ""
    return RankState(exists, running, None if running or not status.isdigit() else int(status),
                     started, None if running else epoch(kv.get("ExecMainExitTimestamp", "")),
                     ident, digest, now, f"{active or 'unknown'}/{sub or 'unknown'}")


class RankStateFact(Fact[RankState]):
    name = "rank_state"

    def __init__(self, runtime: str, unit_or_container: str, stamp_path: str) -> None:
        self.runtime, self.target, self.stamp = runtime, unit_or_container, stamp_path

    def command(self) -> Shell:
        return Shell.sh(state_script(self.runtime, self.target, self.stamp), sudo=True,
                        description=f"state of {self.target}")

    def parse(self, result: CommandResult) -> RankState:
        return parse_state(self.runtime, result.stdout)


def poll_script(runtime: str, name: str, stamp_path: str, skip_lines: int) -> str:
    """State plus the log lines after the first ``skip_lines`` of the current run."""
    q = shlex.quote(name)
    start = max(1, skip_lines + 1)
    if runtime == "docker":
        log = f"docker logs {q} 2>&1 | tail -n +{start}"
    else:
        log = (f"id=$(systemctl show -p InvocationID --value -- {q}); "
               f"[ -n \"$id\" ] && journalctl _SYSTEMD_INVOCATION_ID=\"$id\" -o cat --no-pager -q "
               f"| tail -n +{start}")
    return state_script(runtime, name, stamp_path) + f"echo '{LOG_MARK}'\n{log}\ntrue\n"


def parse_poll(runtime: str, text: str) -> tuple[RankState, list[str]]:
    head, _, log = text.partition(LOG_MARK + "\n")
    return parse_state(runtime, head), log.splitlines()


# ---- preflight inputs ----------------------------------------------------------------------

@dataclass(frozen=True)
class PortHolder:
    port: int
    pid: int | None
    process: str
    cgroup: str


def port_holders_script(ports: tuple[int, ...]) -> str:
    plist = " ".join(str(int(p)) for p in ports)
    return (
        f"for p in {plist}; do ss -Hltnp \"sport = :$p\" 2>/dev/null | while IFS= read -r l; do "
        "pid=$(printf '%s\\n' \"$l\" | sed -n 's/.*pid=\\([0-9][0-9]*\\).*/\\1/p' | head -n1); "
        "name=$(printf '%s\\n' \"$l\" | sed -n 's/.*users:((\"\\([^\"]*\\)\".*/\\1/p' | head -n1); "
        "cg=''; [ -n \"$pid\" ] && cg=$(tr '\\n' ' ' < /proc/$pid/cgroup 2>/dev/null); "
        "echo \"port=$p pid=${pid:--} proc=${name:--} cgroup=$cg\"; done; done; true"
    )


def parse_port_holders(text: str) -> tuple[PortHolder, ...]:
    out = []
    for line in text.splitlines():
        if not line.startswith("port="):
            continue
        head, _, cgroup = line.partition(" cgroup=")
        kv = dict(part.split("=", 1) for part in head.split() if "=" in part)
        pid = kv.get("pid", "-")
        out.append(PortHolder(int(kv["port"]), int(pid) if pid.isdigit() else None,
                              kv.get("proc", "-"), cgroup.strip()))
    return tuple(out)


class PortHoldersFact(Fact[tuple[PortHolder, ...]]):
    """Who listens on the given TCP ports (process and cgroup, so our own unit can be told apart)."""

    name = "port_holders"

    def __init__(self, ports: tuple[int, ...]) -> None:
        self.ports = tuple(sorted(set(ports)))

    def command(self) -> Shell:
        return Shell.sh(port_holders_script(self.ports), sudo=True, description="who holds the serving ports")

    def parse(self, result: CommandResult) -> tuple[PortHolder, ...]:
        return parse_port_holders(result.stdout)


@dataclass(frozen=True)
class WeightsStamp:
    present: bool
    repo: str | None = None
    commit: str | None = None
    files: int = 0
    missing: tuple[str, ...] = ()  # listed files absent or of the wrong size
    error: str = ""


_STAMP_PY = (
    "import json,os,sys\n"
    "d=sys.argv[1]; p=os.path.join(d,sys.argv[2])\n"
    "try: m=json.load(open(p))\n"
    "except FileNotFoundError: print(json.dumps({'present':False})); sys.exit(0)\n"
    "except Exception as e: print(json.dumps({'present':True,'error':str(e)})); sys.exit(0)\n"
    "bad=[]\n"
    "for f in m.get('files',[]):\n"
    "  q=os.path.join(d,f['path'])\n"
    "  if not os.path.isfile(q) or os.path.getsize(q)!=f.get('size'): bad.append(f['path'])\n"
    "print(json.dumps({'present':True,'repo':m.get('repo'),'commit':m.get('commit'),"
    "'files':len(m.get('files',[])),'missing':bad}))\n"
)


class WeightsStampFact(Fact[WeightsStamp]):
    """The weights manifest stamp (written after verified staging) and which listed files are gone."""

    name = "weights_stamp"

    def __init__(self, weights_dir: str) -> None:
        self.weights_dir = weights_dir

    def command(self) -> Shell:
        return Shell.cmd("python3", "-c", _STAMP_PY, self.weights_dir, MANIFEST, sudo=True,
                         description="read the weights stamp")

    def parse(self, result: CommandResult) -> WeightsStamp:
        return parse_stamp(result)


def parse_stamp(result: CommandResult) -> WeightsStamp:
    try:
        doc = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return WeightsStamp(False, error=result.tail(3) or f"exit {result.exit_code}")
    return WeightsStamp(bool(doc.get("present")), doc.get("repo"), doc.get("commit"), int(doc.get("files") or 0),
                        tuple(doc.get("missing") or ()), str(doc.get("error") or ""))


class SglangVersionFact(Fact[str]):
    """The installed SGLang: the venv's package version, or the image id (docker runtime)."""

    name = "sglang_version"

    def __init__(self, runtime: str, venv_path: str, image: str) -> None:
        self.runtime, self.venv, self.image = runtime, venv_path, image

    def command(self) -> Shell:
        if self.runtime == "docker":
            return Shell.sh(f"docker image inspect -f '{{{{.Id}}}}' {shlex.quote(self.image)} 2>/dev/null || true",
                            sudo=True, description="SGLang image id")
        py = shlex.quote(self.venv.rstrip("/") + "/bin/python")
        return Shell.sh(f"{py} -c 'import importlib.metadata as m; print(m.version(\"sglang\"))' 2>/dev/null || true",
                        description="SGLang version in the venv")

    def parse(self, result: CommandResult) -> str:
        lines = result.stdout.strip().splitlines()
        return lines[-1].strip() if lines else ""
