"""The venv runtime: each service is a systemd unit ``<stem>.service`` running a Python venv.

State: ``systemctl show`` (monotonic timestamps, turned into wall time with the host clock
read in the same command) plus the launch stamp ``<digest> <InvocationID>``; logs: the
journal of the unit (``journalctl -u``) or of its current run (``_SYSTEMD_INVOCATION_ID``).
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from glm5cluster.commands import Shell, Upload
from glm5cluster.facts import units
from glm5cluster.facts.log_lines import LogLine, parse_lines
from glm5cluster.facts.rank_state import RankState, parse_clock, parse_props, unit_state
from glm5cluster.model.catalog import GpuProfile
from glm5cluster.render import (
    EnvDialect,
    UnitVars,
    render_unit,
    systemd_command_line,
    systemd_quote,
)
from glm5cluster.runtime.base import Installed, Kind, Service, stop_loop

UNIT_DIR = units.UNIT_DIR
PROPS = ("LoadState", "ActiveState", "SubState", "Result", "InvocationID", "MainPID", "ExecMainCode",
         "ExecMainStatus", "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic",
         "ActiveEnterTimestampMonotonic", "InactiveEnterTimestampMonotonic", "Description")
_CLOCK = "@@glm5cluster:clock@@"
_STAMP = "@@glm5cluster:stamp@@"


@dataclass(frozen=True)
class UnitRuntime:
    venv_path: str
    env_dialect: EnvDialect = "systemd"
    host_shm: bool = True  # the service uses the host's /dev/shm (a container brings its own)
    needs_container_engine: bool = False
    host_gpu_userspace: bool = True  # CUDA/ROCm user space from the host (a container brings its own)
    kind: Kind = "unit"
    limits_in_spec: bool = False  # the unit sets LimitMEMLOCK/NOFILE; a python run once has the caller's
    mode: str = "venv"

    @property
    def python(self) -> str:
        return self.venv_path.rstrip("/") + "/bin/python"

    def target(self, stem: str) -> str:
        return f"{stem}.service"

    def image(self, gpu: GpuProfile) -> str | None:
        return None

    def venv(self) -> str | None:
        return self.venv_path

    def secrets_path_inside(self) -> str | None:
        """None: the unit reads the secrets file as an ``EnvironmentFile=`` (mode 0600, root)."""
        return None

    def python_once(self, image: str | None) -> list[str]:
        """argv prefix running this runtime's python once (stdin passed through)."""
        return [self.python]

    def python_as_service(self, image: str | None, *, gpus: str, shm_size: str, memlock_unlimited: bool,
                          env: Mapping[str, str] | None = None, mounts: Sequence[str] = (),
                          devices: Sequence[str] = ()) -> list[str]:
        """The venv's python on the host (its limits are the caller's, not the unit's)."""
        return [self.python] if env is None else ["env", *(f"{k}={v}" for k, v in env.items()), self.python]

    def exec_argv(self, target: str, *, env: Sequence[str] = (), workdir: str | None = None) -> list[str]:
        """The venv's python on the host: the caller's environment and directory are its own."""
        return [self.python]

    def share_dir_script(self, target: str, path: str) -> str:
        return ""  # the unit runs on the host: the directory is already there

    def unshare_dir_script(self, target: str, path: str) -> str:
        return ""

    def command_argv(self, svc: Service) -> list[str]:
        """The command the service runs, as argv (what ``plan`` shows)."""
        return list(svc.argv)

    def unit_text(self, svc: Service) -> str:
        return render_unit(UnitVars(description=svc.description, user=svc.user,
                                    env_files=svc.env_files + ((svc.secrets_file,) if svc.secrets_file else ()),
                                    exec_start=systemd_command_line(list(svc.argv)),
                                    timeout_stop_sec=svc.stop_timeout, unit_stem=svc.stem,
                                    memlock_unlimited=svc.memlock_unlimited,
                                    environment=tuple(systemd_quote(f"{k}={v}") for k, v in svc.environment),
                                    restart_on_failure=svc.restart_on_failure))

    def install(self, svc: Service, extra_digest: bytes = b"") -> Installed:
        text = self.unit_text(svc)
        digest = hashlib.sha256(extra_digest + text.encode()).hexdigest()[:32]
        up = Upload(f"{UNIT_DIR}/{self.target(svc.stem)}", text.encode(), 0o644, "root", "root", sudo=True)
        return Installed((up,), digest, text)

    def start(self, svc: Service, installed: Installed) -> Shell:
        """daemon-reload, start, and stamp the invocation with the config digest."""
        q = shlex.quote(self.target(svc.stem))
        body = f"systemctl daemon-reload && systemctl reset-failed -- {q} 2>/dev/null; systemctl start -- {q}"
        if svc.stamp_path:
            d = shlex.quote(svc.stamp_path.rsplit("/", 1)[0] or "/")
            body += (f" && mkdir -p -- {d} && echo \"{installed.digest} $(systemctl show -p InvocationID --value -- {q})\" "
                     f"> {shlex.quote(svc.stamp_path)}")
        return Shell.sh(body, sudo=True, timeout=120, description=f"systemctl start {self.target(svc.stem)}")

    def stop_script(self, target: str, *, head: bool, drain: float, grace: float) -> str:
        q = shlex.quote(target)
        return stop_loop(f"systemctl is-active -q -- {q}", f"systemctl kill -s \"SIG$1\" -- {q}",
                         f"timeout \"$1\" systemctl stop -- {q}", head=head, drain=drain, grace=grace) + \
            f"systemctl stop -- {q} 2>/dev/null; systemctl reset-failed -- {q} 2>/dev/null; true\n"

    def remove_script(self, targets: Sequence[str]) -> str:
        if not targets:
            return "true\n"
        out = []
        for t in targets:
            q = shlex.quote(t)
            out.append(f"systemctl disable -- {q} >/dev/null 2>&1; rm -f -- {UNIT_DIR}/{q}; rm -rf -- {UNIT_DIR}/{q}.d")
        out.append("systemctl daemon-reload")
        out += [f"systemctl reset-failed -- {shlex.quote(t)} 2>/dev/null" for t in targets]
        return "\n".join(out + ["true"]) + "\n"

    def state_script(self, target: str, stamp_path: str = "") -> str:
        q = shlex.quote(target)
        stamp = f"head -n1 {shlex.quote(stamp_path)} 2>/dev/null" if stamp_path else "true"
        return (f"systemctl show -p {','.join(PROPS)} -- {q} 2>/dev/null\n"
                f"echo '{_CLOCK}'; cat /proc/uptime; date +%s.%N\n"
                f"echo '{_STAMP}'; {stamp}\n")

    def parse_state(self, target: str, text: str) -> RankState:
        show, _, rest = text.partition(_CLOCK + "\n")
        clock, _, stamp = rest.partition(_STAMP + "\n")
        return unit_state(parse_props(show), parse_clock(clock), stamp.strip().split("\n")[0], target)

    def log_script(self, target: str, *, lines: int | None, since: float | None, follow: bool) -> str:
        argv = ["journalctl", "-u", target, "-o", "short-iso-precise", "--no-pager", "-q"]
        argv += ["-n", str(lines)] if lines is not None else []
        argv += [f"--since=@{since:.0f}"] if since is not None else []
        argv += ["--follow"] if follow else []
        return shlex.join(argv)

    def parse_log(self, text: str) -> list[LogLine]:
        return parse_lines(text, docker=False)

    def run_log_script(self, target: str, *, skip: int | None = None, tail: int | None = None) -> str:
        """The current run's lines (plain text): after the first ``skip``, or the last ``tail``."""
        q = shlex.quote(target)
        cut = f"tail -n +{max(1, (skip or 0) + 1)}" if tail is None else f"tail -n {tail}"
        return (f"id=$(systemctl show -p InvocationID --value -- {q} 2>/dev/null)\n"
                f"if [ -n \"$id\" ]; then journalctl _SYSTEMD_INVOCATION_ID=\"$id\" -o cat --no-pager -q | {cut}; "
                f"elif systemctl cat -- {q} >/dev/null 2>&1; then "
                f"journalctl -u {q} -o cat --no-pager -q | {cut}; fi\ntrue\n")

    def running_script(self, target: str) -> str:
        return self.sglang_version_script()

    def parse_running(self, text: str) -> str:
        lines = text.strip().splitlines()
        return f"sglang {lines[-1].strip()}" if lines and lines[-1].strip() else ""

    def sglang_version_script(self) -> str:
        """The SGLang package version in the venv (empty output when absent)."""
        return self.installed_script(None)

    def installed_script(self, image: str | None) -> str:
        """What the runtime runs: the SGLang version in the venv."""
        py = shlex.quote(self.python)
        return f"{py} -c 'import importlib.metadata as m; print(m.version(\"sglang\"))' 2>/dev/null || true"
