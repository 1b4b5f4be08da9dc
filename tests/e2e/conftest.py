"""Lab fixtures for end-to-end tests.

``make_lab`` (session-scoped) brings up a lab and returns a ``Lab``; every lab it made is torn
down at the end of the session. Each test module uses its own lab name and subnet so modules can
run side by side on the one shared Docker engine::

    def test_x(make_lab):
        lab = make_lab("engine", hosts=4, subnet="172.28.81.0/24")
        rc, out = lab.exec("node-1", "nvidia-smi -L")
        subprocess.run(lab.ssh_argv("node-1", "true"), check=True)

Labs live under a per-session ``GLM5CLUSTER_LAB_HOME`` (a temp dir) so tests never touch the
user's ``~/.glm5cluster/lab``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:
    import docker
except ImportError:  # pragma: no cover
    docker = None


@dataclass
class Lab:
    name: str
    subnet: str
    dir: Path
    inventory: Path
    key: Path
    known_hosts: Path
    addresses: dict[str, str]  # host name -> address
    client: object = field(repr=False)

    @property
    def hosts(self) -> list[str]:
        return list(self.addresses)

    def container(self, host: str) -> object:
        return self.client.containers.get(f"glm5lab-{self.name}-{host}")  # type: ignore[attr-defined]

    def exec(self, host: str, cmd: str | list[str], user: str = "root") -> tuple[int, str]:
        """Run a command in a host through docker exec (not SSH): (exit code, stdout+stderr)."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
        rc, out = self.container(host).exec_run(argv, user=user)  # type: ignore[attr-defined]
        return int(rc), out.decode(errors="replace")

    def ssh_argv(self, host: str, cmd: str, user: str = "root") -> list[str]:
        """A real OpenSSH command line with strict host key checking against the lab's known_hosts."""
        return [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "ConnectTimeout=10",
            "-i", str(self.key), f"{user}@{self.addresses[host]}", cmd,
        ]

    def ssh_cmd(self, host: str, cmd: str, user: str = "root") -> str:
        return shlex.join(self.ssh_argv(host, cmd, user))


MakeLab = Callable[..., Lab]


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("glm5lab-home")
    old = os.environ.get("GLM5CLUSTER_LAB_HOME")
    os.environ["GLM5CLUSTER_LAB_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("GLM5CLUSTER_LAB_HOME", None)
    else:
        os.environ["GLM5CLUSTER_LAB_HOME"] = old


@pytest.fixture(scope="session")
def docker_client() -> object:
    if docker is None:
        pytest.skip("docker SDK not installed")
    from glm5cluster.lab.dockerd import ensure_engine

    try:
        return ensure_engine(None)
    except Exception as e:  # no engine and cannot start one
        pytest.skip(f"no Docker engine: {e}")


@pytest.fixture(scope="session")
def make_lab(lab_home: Path, docker_client: object) -> Iterator[MakeLab]:
    from glm5cluster.lab.files import LabSettings
    from glm5cluster.lab.manager import down, parse_overrides, up

    made: list[str] = []

    def _make(
        name: str, hosts: int = 2, gpu: str = "H200", subnet: str = "172.28.90.0/24",
        gpus_per_node: int = 8, sudo_user_hosts: int = 0, overrides: list[str] | None = None,
        mirror: bool = False, hub_shards: int = 8, hub_shard_mb: float = 4.0, hub_rate_mbps: float = 0.0,
        hub_token: str = "",
    ) -> Lab:
        settings = LabSettings(
            name=name, hosts=hosts, gpu=gpu.upper(), gpus_per_node=gpus_per_node, subnet=subnet,
            sudo_user_hosts=sudo_user_hosts, overrides=parse_overrides(list(overrides or []), hosts),
            mirror=mirror, hub_shards=hub_shards, hub_shard_mb=hub_shard_mb, hub_rate_mbps=hub_rate_mbps,
            hub_token=hub_token,
        )
        if name not in made:
            made.append(name)
        info = up(docker_client, settings, None)  # type: ignore[arg-type]
        return Lab(
            name=name, subnet=subnet, dir=Path(info.dir), inventory=Path(info.inventory),
            key=Path(info.key), known_hosts=Path(info.known_hosts),
            addresses={h.name: h.address for h in info.hosts}, client=docker_client,
        )

    yield _make
    if os.environ.get("GLM5LAB_KEEP"):
        return
    for name in made:
        down(docker_client, name, None)  # type: ignore[arg-type]
