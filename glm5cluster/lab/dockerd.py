"""Find, or start, the Docker engine the rehearsal lab runs on.

``ensure_engine`` answers a connected ``docker.DockerClient``. It uses ``DOCKER_HOST`` or the
default socket; when nothing answers there and we are root, it starts ``dockerd`` in the
background with the settings that work on the project's machines (``lab.md``: no iptables),
waits for it and says so. Several processes may call it at once: a lock file serialises the
start, and whoever comes second finds the engine the first one started.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import docker
import docker.errors

from glm5cluster.errors import GlmError

STATE_DIR = Path("/var/lib/glm5cluster")
DATA_ROOT = STATE_DIR / "docker"
LOG_FILE = Path("/var/log/glm5cluster-dockerd.log")
LOCK_FILE = Path("/run/glm5cluster-dockerd.lock")
DEFAULT_SOCKET = "/var/run/docker.sock"
START_TIMEOUT = 60.0


class Say(Protocol):
    def print(self, *objects: object) -> None: ...


def _client(base_url: str | None) -> docker.DockerClient | None:
    """A client that answers a ping, or None."""
    try:
        client = docker.DockerClient(base_url=base_url, timeout=300) if base_url else docker.from_env(timeout=300)
        client.ping()
        return client
    except (docker.errors.DockerException, OSError):
        return None


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def dockerd_argv(socket_path: str = DEFAULT_SOCKET) -> list[str]:
    """The dockerd command line that works here (lab.md: iptables is unavailable)."""
    return [
        "dockerd",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        f"--data-root={DATA_ROOT}",
        f"--host=unix://{socket_path}",
        f"--pidfile={STATE_DIR / 'dockerd.pid'}",
        f"--exec-root={STATE_DIR / 'dockerd-exec'}",
    ]


def _start_dockerd(say: Say | None) -> docker.DockerClient:
    if shutil.which("dockerd") is None:
        raise GlmError(
            "no Docker engine answers and `dockerd` is not installed",
            hint="apt-get install docker.io (scripts/bootstrap does it), or set DOCKER_HOST",
        )
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    if say:
        say.print(f"lab: no Docker engine answers: starting dockerd (log {LOG_FILE})")
    with open(LOG_FILE, "ab") as log:
        subprocess.Popen(  # noqa: S603 - fixed argv
            dockerd_argv(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives us: the engine is shared by every helper
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        client = _client(f"unix://{DEFAULT_SOCKET}")
        if client is not None:
            if say:
                say.print(f"lab: started dockerd (data root {DATA_ROOT}, socket {DEFAULT_SOCKET})")
            return client
        time.sleep(0.5)
    raise GlmError(
        f"dockerd did not answer within {START_TIMEOUT:.0f}s",
        hint=f"read {LOG_FILE}",
    )


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_MINIMUM = 1024


def ensure_inotify(console: Say | None = None) -> None:
    """Every lab host runs systemd, which needs inotify instances; the kernel default (128 per
    user) runs out after a few hosts and they hang at "initializing". Raise it when we may."""
    try:
        current = int(INOTIFY_INSTANCES.read_text().strip())
    except (OSError, ValueError):
        return
    if current >= INOTIFY_MINIMUM:
        return
    try:
        INOTIFY_INSTANCES.write_text(f"{INOTIFY_MINIMUM}\n")
        if console:
            console.print(f"lab: raised fs.inotify.max_user_instances from {current} to {INOTIFY_MINIMUM}")
    except OSError:
        if console:
            console.print(f"lab: fs.inotify.max_user_instances is {current}; lab hosts may hang at boot "
                          f"(as root: sysctl fs.inotify.max_user_instances={INOTIFY_MINIMUM})")


def ensure_engine(console: Say | None = None) -> docker.DockerClient:
    """A client for the shared Docker engine, starting one when none answers and we are root."""
    ensure_inotify(console)
    host = os.environ.get("DOCKER_HOST")
    client = _client(host)
    if client is not None:
        return client
    if host and host != f"unix://{DEFAULT_SOCKET}":
        raise GlmError(
            f"the Docker engine at DOCKER_HOST={host} does not answer",
            hint="start it, or unset DOCKER_HOST to use (or start) the default engine",
        )
    if os.geteuid() != 0:
        raise GlmError(
            "no Docker engine answers at the default socket",
            hint="start dockerd (as root), or set DOCKER_HOST to a running engine",
        )
    with file_lock(LOCK_FILE):
        client = _client(f"unix://{DEFAULT_SOCKET}")  # someone else may have started it meanwhile
        if client is not None:
            return client
        return _start_dockerd(console)
