"""The seam: what runs a service on a node (a systemd unit or a docker container).

A ``Service`` says *what* to run (argv, environment files, resources, description); a
``Runtime`` says *how*: the target's name, the image rule, the files to install, start,
stop-with-grace, remove, one state probe parsed into one ``RankState``, and the logs (tail,
since, follow, the current run's lines). Every method returns a command or a shell fragment
plus a pure parser; nothing here connects anywhere, so callers compose fragments into one
SSH command per host. Implementations: ``runtime.unit.UnitRuntime`` (the venv runtime) and
``runtime.container.ContainerRuntime`` (the docker runtime); pick one with
``runtime.for_inventory``.

Names: every service of cluster C is ``glm5-C-<what>`` (``stem``): ``glm5-C-r<i>`` for
replica i's ranks, ``glm5-C-router`` for the router; a unit is ``<stem>.service``, a container
is ``<stem>``. ``survey`` finds all of them on a host, whichever runtime started them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from glm5cluster.commands import Shell, Upload
from glm5cluster.facts.log_lines import LogLine
from glm5cluster.facts.rank_state import RankState
from glm5cluster.model.catalog import GpuProfile
from glm5cluster.render import EnvDialect

Kind = Literal["unit", "container"]
CONFIG_LABEL = "glm5cluster.config"  # container label carrying the config digest
CLUSTER_LABEL = "glm5cluster.cluster"
RANK_LABEL = "glm5cluster.rank"
LOG_MARK = "@@glm5cluster:log@@"


def cluster_prefix(cluster: str) -> str:
    """``glm5-<cluster>-``: every service of the cluster is named so (units add ``.service``)."""
    return f"glm5-{cluster}-"


def rank_stem(cluster: str, replica: int) -> str:
    return f"{cluster_prefix(cluster)}r{replica}"


def router_stem(cluster: str) -> str:
    return f"{cluster_prefix(cluster)}router"


@dataclass(frozen=True)
class Service:
    """What to run on one node, whatever runs it.

    ``argv`` is built with the runtime's own interpreter (``Runtime.python``). Fields a runtime
    has no use for are ignored by it (a unit has no image, a container no ``stamp_path``).
    """

    stem: str
    description: str  # a rank's says "rank N/M" (the survey reads the rank from it)
    argv: tuple[str, ...]
    env_files: tuple[str, ...] = ()  # plain environment, read in order
    secrets_file: str | None = None  # host path of a 0600 ``NAME=value`` file (the API key)
    labels: tuple[tuple[str, str], ...] = ()
    gpus: Literal["nvidia", "amd"] | None = None  # device access (container)
    devices: tuple[str, ...] = ()  # further host devices (container): /dev/infiniband on RDMA nodes
    ro_mounts: tuple[str, ...] = ()  # host paths visible read-only at the same path (container)
    shm_size: str | None = None
    memlock_unlimited: bool = True
    stop_timeout: int = 300  # seconds to drain after SIGTERM before SIGKILL
    image: str = ""  # container image (``Runtime.image``)
    user: str = "root"
    stamp_path: str = ""  # unit: ``<digest> <InvocationID>`` of the run the launch started
    environment: tuple[tuple[str, str], ...] = ()  # plain (non-secret) variables set inline
    restart_on_failure: bool = False  # ranks: never (a TP group restarts as one); the router: yes


@dataclass(frozen=True)
class Installed:
    """What to write before a start, and the digest of the whole definition."""

    uploads: tuple[Upload, ...]
    digest: str
    definition: str  # the unit file, or the ``docker run`` command line (what ``plan`` shows)


class Runtime(Protocol):
    """How services run on a node. See the module docstring; both implementations are pure."""

    @property
    def kind(self) -> Kind: ...
    @property
    def env_dialect(self) -> EnvDialect: ...  # how its environment files are read (render.encode_env_line)
    @property
    def host_shm(self) -> bool: ...  # the service uses the host's /dev/shm (a container brings --shm-size)
    @property
    def needs_container_engine(self) -> bool: ...  # docker engine (+ NVIDIA container toolkit)
    @property
    def host_gpu_userspace(self) -> bool: ...  # CUDA/ROCm user space installed on the host
    @property
    def mode(self) -> str: ...  # the inventory's ``serving.runtime`` value: "venv" | "docker"
    @property
    def python(self) -> str: ...  # interpreter inside this runtime

    def target(self, stem: str) -> str: ...
    def image(self, gpu: GpuProfile) -> str | None: ...  # None: runs no image
    def venv(self) -> str | None: ...  # None: runs no venv
    def python_once(self, image: str | None) -> list[str]: ...
    # the runtime's python run once the way the service would run (the server's devices, shm,
    # ulimits and ``env``; ``mounts`` are ``host:inside:ro`` specs a container needs)
    def python_as_service(self, image: str | None, *, gpus: str, shm_size: str, memlock_unlimited: bool,
                          env: Mapping[str, str] | None = None, mounts: Sequence[str] = (),
                          devices: Sequence[str] = ()) -> list[str]: ...
    @property
    def limits_in_spec(self) -> bool: ...  # python_as_service carries the service's memlock/nofile/devices
    # beside a running service: argv prefix running this runtime's python where the service runs
    # (``env``: host variables passed by name; ``workdir``: its working directory), and the shell
    # fragments that make a host directory visible there at the same path, and remove it again
    def exec_argv(self, target: str, *, env: Sequence[str] = (), workdir: str | None = None) -> list[str]: ...
    def share_dir_script(self, target: str, path: str) -> str: ...
    def unshare_dir_script(self, target: str, path: str) -> str: ...
    def secrets_path_inside(self) -> str | None: ...  # where the program reads secrets_file (None: from its env)
    def command_argv(self, svc: Service) -> list[str]: ...
    def install(self, svc: Service, extra_digest: bytes = b"") -> Installed: ...
    def start(self, svc: Service, installed: Installed) -> Shell: ...
    def stop_script(self, target: str, *, head: bool, drain: float, grace: float) -> str: ...
    def remove_script(self, targets: Sequence[str]) -> str: ...
    def state_script(self, target: str, stamp_path: str = "") -> str: ...
    def parse_state(self, target: str, text: str) -> RankState: ...
    def log_script(self, target: str, *, lines: int | None, since: float | None, follow: bool) -> str: ...
    def parse_log(self, text: str) -> list[LogLine]: ...
    def run_log_script(self, target: str, *, skip: int | None = None, tail: int | None = None) -> str: ...
    def installed_script(self, image: str | None) -> str: ...
    def sglang_version_script(self) -> str: ...
    # what the service runs, for ``status``: the venv's SGLang version, or the container's image
    # (its registry digest and image id); ``parse_running`` gives one line ("" when unknown)
    def running_script(self, target: str) -> str: ...
    def parse_running(self, text: str) -> str: ...


def stop_loop(alive: str, kill: str, term_wait: str, *, head: bool, drain: float, grace: float) -> str:
    """The one stop-with-grace loop. ``alive`` is a test, ``kill`` a command taking the signal
    name as ``$1`` (a shell function body), ``term_wait`` stops with SIGTERM and waits up to
    ``$1`` seconds. A head drains (SIGTERM, up to ``drain`` s, then SIGKILL); SGLang ranks >= 1
    ignore SIGTERM (node 0 drives shutdown): they get ``grace`` s to follow their head, then
    SIGINT, as long again, then SIGKILL."""
    fns = f"_alive() {{ {alive}; }}\n_kill() {{ {kill}; }}\n_term() {{ {term_wait}; }}\n"
    if head:
        secs = max(1, int(drain))
        return fns + f"if _alive; then _term {secs} || _kill KILL; fi\n"
    ticks = max(2, int(grace * 2))
    return fns + (f"i=0; while _alive && [ $i -lt {ticks * 2} ]; do sleep 0.5; i=$((i+1)); "
                  f"[ $i -eq {ticks} ] && _kill INT; done\n"
                  "if _alive; then _kill KILL; fi\n_term 30 || true\n")
