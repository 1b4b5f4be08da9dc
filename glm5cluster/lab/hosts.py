"""One lab host: a container that behaves like a bare-metal server (systemd, sshd, docker).

Flags from ``lab.md`` (systemd as PID 1 without ``--privileged``) plus ``NET_ADMIN`` so the
host's own Docker engine can create its bridge. ``/run`` is a tmpfs and the restart policy is
``unless-stopped``: ``systemctl reboot`` in a host restarts its container with an empty ``/run``.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
from dataclasses import dataclass, field

import docker
import docker.errors
from docker.models.containers import Container

from glm5cluster.errors import GlmError

LABEL = "glm5cluster.lab"
HOST_LABEL = "glm5cluster.lab.host"
NVIDIA_DRIVER = "580.159.04"  # the captured 2x H200 machine (fixtures/nvidia-smi/h200x2)
NVIDIA_CUDA = "13.0"
AMD_DRIVER = "6.10.5"
AMD_ROCM = "6.4.1"
SHM_SIZE = "8g"  # /dev/shm of every lab host (see create)
GLM5_UID = 1000


@dataclass(frozen=True)
class HostPlan:
    """What one lab host should be."""

    lab: str
    hostname: str
    address: str
    gpu_kind: str
    gpu_count: int
    driver: str | None
    sudo_user: bool = False
    docker_on_demand: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def container_name(self) -> str:
        return f"glm5lab-{self.lab}-{self.hostname}"

    @property
    def volume_name(self) -> str:
        return f"glm5lab-{self.lab}-{self.hostname}-docker"

    def gpu_config(self) -> dict[str, object]:
        amd = self.gpu_kind.upper().startswith("MI")
        cfg: dict[str, object] = {
            "kind": self.gpu_kind.upper(),
            "count": self.gpu_count,
            "driver_version": self.driver,
            "cuda_version": NVIDIA_CUDA,
            "rocm_version": AMD_ROCM,
            "persistence_mode": not amd,
            "seed": f"{self.lab}/{self.hostname}",
        }
        cfg.update(self.extra)
        return cfg


def _tar(files: list[tuple[str, bytes, int, int]]) -> bytes:
    """A tar of (path, content, mode, uid) with the parent directories it needs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data, mode, uid in files:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, uid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# The journal lives in /run (a tmpfs, counted in the host's memory): cap it so that a long-lived
# lab of many hosts does not grow without bound.
JOURNALD_CONF = b"[Journal]\nRuntimeMaxUse=16M\nSystemMaxUse=64M\n"
# --docker-on-demand: at first boot only, take dockerd and containerd out of the boot (the docker.socket
# unit stays enabled, so the first `docker` command starts them). A later `systemctl enable docker`
# (the docker runtime) then survives reboots, as on a real host. dockerd + containerd: ~130 MiB RSS (ps) on a booted host.
ON_DEMAND_INIT = (
    "[ -e /etc/glm5lab/docker-on-demand ] || "
    "{ systemctl disable docker.service containerd.service >/dev/null 2>&1; : > /etc/glm5lab/docker-on-demand; }; "
    "exec /sbin/init"
)


def host_files(plan: HostPlan, pubkey: str, daemon_json: dict[str, object]) -> list[tuple[str, bytes, int, int]]:
    key = (pubkey.strip() + "\n").encode()
    files = [
        ("etc/systemd/journald.conf.d/glm5lab.conf", JOURNALD_CONF, 0o644, 0),
        ("etc/glm5lab/gpu.json", (json.dumps(plan.gpu_config(), indent=1) + "\n").encode(), 0o644, 0),
        ("root/.ssh/authorized_keys", key, 0o600, 0),
        ("etc/docker/daemon.json", (json.dumps(daemon_json, indent=2) + "\n").encode(), 0o644, 0),
    ]
    if plan.sudo_user:
        files += [
            ("home/glm5/.ssh/authorized_keys", key, 0o600, GLM5_UID),
            ("etc/sudoers.d/glm5", b"glm5 ALL=(ALL) NOPASSWD:ALL\n", 0o440, 0),
        ]
    return files


def create(
    client: docker.DockerClient, image: str, plan: HostPlan, network: str,
    etc_hosts: dict[str, str], files: list[tuple[str, bytes, int, int]],
) -> Container:
    labels = {LABEL: plan.lab, HOST_LABEL: plan.hostname}
    try:
        client.volumes.get(plan.volume_name)
    except docker.errors.NotFound:
        client.volumes.create(plan.volume_name, labels=labels)
    api = client.api
    host_config = api.create_host_config(
        cap_add=["SYS_ADMIN", "NET_ADMIN"],
        security_opt=["seccomp=unconfined"],
        cgroupns="host",
        binds={
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            plan.volume_name: {"bind": "/var/lib/docker", "mode": "rw"},
        },
        tmpfs={"/run": "rw,nosuid,nodev,mode=755", "/run/lock": "rw,nosuid,nodev,noexec"},
        # a server's /dev/shm is half its RAM, not docker's 64 MiB default (preflight's spec
        # check wants >= 1 GiB for NCCL); a tmpfs limit, memory only when written
        shm_size=SHM_SIZE,
        restart_policy={"Name": "unless-stopped"},
        extra_hosts=etc_hosts,
    )
    networking = api.create_networking_config({network: api.create_endpoint_config(ipv4_address=plan.address)})
    cid = api.create_container(
        image, name=plan.container_name, hostname=plan.hostname, labels=labels,
        host_config=host_config, networking_config=networking, stop_signal="SIGRTMIN+3",
        command=["/bin/sh", "-c", ON_DEMAND_INIT] if plan.docker_on_demand else None,
        volumes=["/sys/fs/cgroup", "/var/lib/docker"],
    )["Id"]
    container = client.containers.get(cid)
    container.put_archive("/", _tar(files))
    container.start()
    return container


def exec_text(container: Container, cmd: list[str]) -> tuple[int, str]:
    rc, out = container.exec_run(cmd, demux=False)
    return int(rc if rc is not None else -1), (out or b"").decode(errors="replace")


def _ssh_banner(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2) as s:
            s.settimeout(2)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_ready(container: Container, address: str, deadline: float) -> str:
    """Wait until systemd has booted (running/degraded) and sshd answers; the systemd state."""
    state = "unknown"
    while time.monotonic() < deadline:
        container.reload()
        if container.status not in ("running", "restarting", "created"):
            raise GlmError(
                f"lab host {container.name} is {container.status}",
                hint=f"docker logs {container.name}",
            )
        if container.status == "running":
            try:
                _, out = exec_text(container, ["systemctl", "is-system-running"])
                state = out.strip() or state
            except docker.errors.APIError:
                state = "starting"
            if state in ("running", "degraded") and _ssh_banner(address):
                return state
        time.sleep(0.5)
    raise GlmError(
        f"lab host {container.name} ({address}) not ready in time: systemd says {state!r}",
        hint=f"docker exec {container.name} systemctl --failed; docker exec {container.name} journalctl -b",
    )


def host_keys(container: Container) -> list[str]:
    """The host's public host keys as ``type base64`` strings, read from its filesystem."""
    rc, out = exec_text(container, ["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"])
    keys = [" ".join(ln.split()[:2]) for ln in out.splitlines() if ln.startswith(("ssh-", "ecdsa-"))]
    if rc != 0 or not keys:
        raise GlmError(f"could not read the SSH host keys of {container.name}", hint="is sshd installed and booted?")
    return keys
