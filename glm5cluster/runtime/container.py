"""The docker runtime: each service is a container named ``<stem>``, labelled with its cluster,
replica, rank and config digest, started with ``docker run --detach --restart no``.

The image rule lives here only (``image``): ``serving.image`` when set, else lmsysorg's tag
for the version, with the ROCm suffix on AMD (``-rocm700-mi30x`` / ``-rocm700-mi35x``, the
pattern published on lmsysorg/sglang, e.g. ``v0.5.8-rocm700-mi35x``). The image step pulls
and the launch runs the same name, by construction.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from glm5cluster.commands import Shell
from glm5cluster.errors import PlanError
from glm5cluster.facts.log_lines import LogLine, parse_lines
from glm5cluster.facts.rank_state import RankState, container_state
from glm5cluster.model.catalog import GpuProfile
from glm5cluster.render import EnvDialect
from glm5cluster.runtime.base import CONFIG_LABEL, Installed, Kind, Service, stop_loop
from glm5cluster.sglang.launcher import CONTAINER_SECRETS

_FMT = "{{.Id}}\n{{index .Config.Labels \"" + CONFIG_LABEL + "\"}}\n{{json .State}}"
_MARK = "@@glm5cluster:container@@"


@dataclass(frozen=True)
class ContainerRuntime:
    sglang_version: str
    image_override: str | None = None
    env_dialect: EnvDialect = "docker"
    host_shm: bool = False  # the service uses the host's /dev/shm (a container brings its own)
    needs_container_engine: bool = True
    host_gpu_userspace: bool = False  # CUDA/ROCm user space from the host (a container brings its own)
    kind: Kind = "container"
    limits_in_spec: bool = True  # python_as_service runs with the server's --ulimit/--device flags
    mode: str = "docker"
    python: str = "python3"

    def target(self, stem: str) -> str:
        return stem

    def image(self, gpu: GpuProfile) -> str:
        if self.image_override:
            return self.image_override
        if gpu.vendor == "amd":
            family = "mi35x" if gpu.architecture == "gfx950" else "mi30x"
            return f"lmsysorg/sglang:v{self.sglang_version}-rocm700-{family}"
        return f"lmsysorg/sglang:v{self.sglang_version}"

    def venv(self) -> str | None:
        return None

    def secrets_path_inside(self) -> str:
        """The secrets file is bind-mounted read-only here and read by the launcher: ``--env-file``
        would put its values into the container's configuration (``docker inspect``)."""
        return CONTAINER_SECRETS

    def python_once(self, image: str | None) -> list[str]:
        """argv prefix running the image's python once, without network (stdin passed through)."""
        return ["docker", "run", "--rm", "-i", "--network", "none", "--entrypoint", self.python, image or ""]

    def python_as_service(self, image: str | None, *, gpus: str, shm_size: str, memlock_unlimited: bool,
                          env: Mapping[str, str] | None = None, mounts: Sequence[str] = (),
                          devices: Sequence[str] = ()) -> list[str]:
        """The image's python run once with the server's device, network, IPC, shm and ulimit flags."""
        argv = ["docker", "run", "--rm", "--network", "host", "--ipc", "host", "--shm-size", shm_size]
        if gpus == "nvidia":
            argv += ["--gpus", "all"]
        else:
            argv += ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video"]
        for d in devices:  # /dev/infiniband on an RDMA node, as the launch passes it
            argv += ["--device", d]
        if memlock_unlimited:
            argv += ["--ulimit", "memlock=-1"]
        argv += ["--ulimit", "stack=67108864"]
        for m in mounts:
            argv += ["-v", m]
        for k, v in (env or {}).items():
            argv += ["-e", f"{k}={v}"]
        return [*argv, "--entrypoint", self.python, image or ""]

    def exec_argv(self, target: str, *, env: Sequence[str] = (), workdir: str | None = None) -> list[str]:
        """``docker exec`` into the running container (host networking: 127.0.0.1 is the server);
        ``-e NAME`` passes a variable by name, so its value never reaches argv."""
        argv = ["docker", "exec"]
        if workdir:
            argv += ["-w", workdir]
        for name in env:
            argv += ["-e", name]
        return [*argv, target, self.python]

    def share_dir_script(self, target: str, path: str) -> str:
        """The host directory's files copied into the container at the same path (mode 0700)."""
        t, p = shlex.quote(target), shlex.quote(path)
        return f"docker exec {t} mkdir -p -m 0700 {p} && docker cp {shlex.quote(path + '/.')} {t}:{p}"

    def unshare_dir_script(self, target: str, path: str) -> str:
        return f"docker exec {shlex.quote(target)} rm -rf {shlex.quote(path)} || true"

    def run_argv(self, svc: Service, digest: str = "") -> list[str]:
        """``docker run`` for the service, as argv (display with ``shlex.join``)."""
        for m in svc.ro_mounts:
            if ":" in m:
                raise PlanError(f"{m!r} contains ':', which docker -v cannot mount",
                                hint="use a path without ':'", path="model.weights_dir")
        argv = ["docker", "run", "--detach", "--name", self.target(svc.stem)]
        if digest:
            argv += ["--label", f"{CONFIG_LABEL}={digest}"]
        for k, v in svc.labels:
            argv += ["--label", f"{k}={v}"]
        if svc.gpus == "nvidia":
            argv += ["--gpus", "all"]
        elif svc.gpus == "amd":
            argv += ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video",
                     "--cap-add", "SYS_PTRACE", "--security-opt", "seccomp=unconfined"]
        for d in svc.devices:
            argv += ["--device", d]
        argv += ["--network", "host", "--ipc", "host"]
        if svc.shm_size:
            argv += ["--shm-size", svc.shm_size]
        if svc.memlock_unlimited:  # RDMA needs it; nested-container sites cannot raise it
            argv += ["--ulimit", "memlock=-1"]
        restart = "on-failure" if svc.restart_on_failure else "no"
        argv += ["--ulimit", "stack=67108864", "--restart", restart, "--stop-timeout", str(svc.stop_timeout)]
        for m in svc.ro_mounts:
            argv += ["-v", f"{m}:{m}:ro"]
        for f in svc.env_files:
            argv += ["--env-file", f]
        for k, v in svc.environment:
            argv += ["--env", f"{k}={v}"]
        if svc.secrets_file:
            argv += ["-v", f"{svc.secrets_file}:{CONTAINER_SECRETS}:ro"]
        argv.append(svc.image)
        return argv + list(svc.argv)

    def command_argv(self, svc: Service) -> list[str]:
        """The command that starts the service, as argv (what ``plan`` shows)."""
        return self.run_argv(svc)

    def install(self, svc: Service, extra_digest: bytes = b"") -> Installed:
        plain = self.run_argv(svc)
        digest = hashlib.sha256(extra_digest + json.dumps(plain).encode()).hexdigest()[:32]
        return Installed((), digest, shlex.join(self.run_argv(svc, digest)))

    def start(self, svc: Service, installed: Installed) -> Shell:
        q = shlex.quote(self.target(svc.stem))
        return Shell.sh(f"docker rm -f {q} >/dev/null 2>&1; {installed.definition} >/dev/null",
                        sudo=True, timeout=300, description=f"docker run {self.target(svc.stem)}")

    def stop_script(self, target: str, *, head: bool, drain: float, grace: float) -> str:
        q = shlex.quote(target)
        return stop_loop(f"[ \"$(docker inspect -f '{{{{.State.Running}}}}' {q} 2>/dev/null)\" = true ]",
                         f"docker kill -s \"$1\" {q} >/dev/null 2>&1",
                         f"docker stop -t \"$1\" {q} >/dev/null 2>&1", head=head, drain=drain, grace=grace)

    def remove_script(self, targets: Sequence[str]) -> str:
        return "".join(f"docker rm -f {shlex.quote(t)} >/dev/null 2>&1\n" for t in targets) + "true\n"

    def state_script(self, target: str, stamp_path: str = "") -> str:
        return (f"echo '{_MARK}'; docker inspect --format {shlex.quote(_FMT)} {shlex.quote(target)} 2>/dev/null "
                "|| echo absent\necho now=$(date +%s.%N)\n")

    def parse_state(self, target: str, text: str) -> RankState:
        body = text.partition(_MARK + "\n")[2]
        lines = body.splitlines()
        now_line = next((ln for ln in lines if ln.startswith("now=")), "")
        try:
            now: float | None = float(now_line[4:])
        except ValueError:
            now = None
        if len(lines) < 3 or lines[0] == "absent":
            return container_state("", False, now=now, target=target)
        digest = lines[1].strip().replace("<no value>", "")
        return container_state(lines[2], identity=lines[0].strip(), digest=digest, now=now, target=target)

    def log_script(self, target: str, *, lines: int | None, since: float | None, follow: bool) -> str:
        argv = ["docker", "logs", "--timestamps"]
        argv += ["--tail", str(lines)] if lines is not None else []
        argv += ["--since", f"{since:.3f}"] if since is not None else []
        argv += ["--follow"] if follow else []
        return shlex.join([*argv, target]) + " 2>&1"

    def parse_log(self, text: str) -> list[LogLine]:
        return parse_lines(text, docker=True)

    def run_log_script(self, target: str, *, skip: int | None = None, tail: int | None = None) -> str:
        """The container's lines (one container is one run: a launch re-creates it)."""
        q = shlex.quote(target)
        cut = f"tail -n +{max(1, (skip or 0) + 1)}" if tail is None else f"tail -n {tail}"
        return f"if docker inspect {q} >/dev/null 2>&1; then docker logs {q} 2>&1 | {cut}; fi\ntrue\n"

    def running_script(self, target: str) -> str:
        """The image the container runs (its id), and that image's registry digests."""
        img = shlex.quote("{{.Image}}")
        digests = shlex.quote("{{range .RepoDigests}}{{println .}}{{end}}")
        return (f"img=$(docker inspect -f {img} {shlex.quote(target)} 2>/dev/null) && echo \"image=$img\" && "
                f"docker image inspect -f {digests} \"$img\" 2>/dev/null | sed -n 's/^./digest=&/p'\ntrue\n")

    def parse_running(self, text: str) -> str:
        """``lmsysorg/sglang@sha256:... (image sha256:0123456789ab)``; the image id alone for an
        image with no registry digest (loaded from an archive, or built locally)."""
        image = next((ln[6:].strip() for ln in text.splitlines() if ln.startswith("image=")), "")
        digests = [ln[7:].strip() for ln in text.splitlines() if ln.startswith("digest=")]
        if not image:
            return ""
        short = f"image {image[:19]}"
        return f"{digests[0]} ({short})" if digests else short

    def sglang_version_script(self) -> str:
        """None: the version comes from the server's /server_info (an image holds no cheap answer)."""
        return ""

    def installed_script(self, image: str | None) -> str:
        """What the runtime runs: the image id."""
        fmt = shlex.quote("{{.Id}}")
        return f"docker image inspect -f {fmt} {shlex.quote(image or '')} 2>/dev/null || true"
