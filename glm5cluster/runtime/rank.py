"""One SGLang rank as a ``Service``: what the launch installs and starts on each node.

The digest covers everything the rank is started with: the runtime's definition (unit file
or ``docker run`` argv), the env file and the secrets file's digest; it travels with the
running instance (unit: a stamp next to the env file naming the invocation; container: a
label), so "config changed" is exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from glm5cluster.commands import Secret, Upload
from glm5cluster.model.inventory import Inventory
from glm5cluster.render import (
    CONFIG_DIR,
    encode_env_line,
    env_file_path,
    env_file_vars,
    rank_description,
    render_env_file,
    secret_names,
    secrets_file_path,
    server_argv,
)
from glm5cluster.runtime.base import (
    CLUSTER_LABEL,
    RANK_LABEL,
    Installed,
    Runtime,
    Service,
    rank_stem,
)
from glm5cluster.topology import RankAssignment, Replica, Topology

REPLICA_LABEL = "glm5cluster.replica"


@dataclass(frozen=True)
class NodeFabric:
    """What the launch found on a rank's node for what the inventory leaves open
    (``tasks/node_fabric.py``): environment added to the rank's, devices its container gets."""

    env: dict[str, str] = field(default_factory=dict)
    devices: tuple[str, ...] = ()


def cluster_dir(cluster: str) -> str:
    return f"{CONFIG_DIR}/{cluster}"


def stamp_path(cluster: str, replica: int) -> str:
    """Unit runtime: ``<digest> <InvocationID>`` of the run the launch procedure started."""
    return f"{cluster_dir(cluster)}/r{replica}.launched"


def rank_service(inv: Inventory, topology: Topology, replica: Replica, rank: RankAssignment,
                 rt: Runtime, fabric: NodeFabric | None = None) -> Service:
    cluster = inv.cluster.name
    secrets = secrets_file_path(cluster) if secret_names(inv, rank) else None
    gpu = replica.deployment.gpu
    return Service(
        stem=rank_stem(cluster, replica.index),
        description=rank_description(cluster, replica, rank),
        argv=tuple(server_argv(inv, topology, replica, rank, rt.python,
                               rt.secrets_path_inside() if secrets else None)),
        env_files=(env_file_path(cluster, replica.index),),
        secrets_file=secrets,
        labels=((CLUSTER_LABEL, cluster), (REPLICA_LABEL, str(replica.index)), (RANK_LABEL, str(rank.node_rank))),
        gpus=gpu.vendor,
        devices=fabric.devices if fabric else (),
        ro_mounts=(inv.model.weights_dir,),
        shm_size=inv.serving.shm_size,
        memlock_unlimited=inv.serving.memlock_unlimited,
        image=rt.image(gpu) or "",
        stamp_path=stamp_path(cluster, replica.index),
    )


@dataclass(frozen=True)
class RankLaunch:
    """Everything one rank needs on its node."""

    host: str
    replica: int
    node_rank: int
    is_head: bool
    runtime: Runtime
    service: Service
    target: str  # unit or container name
    env: Upload
    secrets: Secret | None  # the secrets file's content (KEY=value line), never displayed
    secrets_path: str | None
    installed: Installed

    @property
    def digest(self) -> str:
        return self.installed.digest


def secrets_content(inv: Inventory, api_key: str | None, rt: Runtime) -> Secret | None:
    name = inv.serving.secrets.api_key_env
    if not name or api_key is None:
        return None
    return Secret(name, encode_env_line(name, api_key, rt.env_dialect) + "\n")


def rank_launch(inv: Inventory, topology: Topology, replica: Replica, rank: RankAssignment,
                api_key: str | None, rt: Runtime, fabric: NodeFabric | None = None) -> RankLaunch:
    """``fabric``: what the launch discovered on the node (interface, GID index, RDMA device)."""
    cluster = inv.cluster.name
    env = render_env_file(env_file_vars(inv, replica, rank, rt.env_dialect, fabric.env if fabric else None))
    secret = secrets_content(inv, api_key, rt) if rank.is_head else None
    svc = rank_service(inv, topology, replica, rank, rt, fabric)
    extra = hashlib.sha256(env.encode()).digest()
    extra += hashlib.sha256(secret.value.encode()).digest() if secret else b"-"
    if inv.serving.extra_packages:  # what the venv holds besides sglang (absent: digests as before)
        extra += hashlib.sha256("\n".join(inv.serving.extra_packages).encode()).digest()
    return RankLaunch(
        host=rank.node.name, replica=replica.index, node_rank=rank.node_rank, is_head=rank.is_head,
        runtime=rt, service=svc, target=rt.target(svc.stem),
        env=Upload(env_file_path(cluster, replica.index), env.encode(), 0o600, "root", "root", sudo=True),
        secrets=secret, secrets_path=secrets_file_path(cluster) if secret else None,
        installed=rt.install(svc, extra),
    )


def rank_command(inv: Inventory, topology: Topology, replica: Replica, rank: RankAssignment) -> list[str]:
    """What starts the rank in the inventory's runtime (``docker run ...`` or the server argv)."""
    from glm5cluster.runtime import for_inventory

    rt = for_inventory(inv)
    return rt.command_argv(rank_service(inv, topology, replica, rank, rt))


def rank_unit(inv: Inventory, topology: Topology, replica: Replica, rank: RankAssignment) -> str:
    """The rank's systemd unit file (venv runtime)."""
    from glm5cluster.runtime.unit import UnitRuntime

    rt = UnitRuntime(inv.serving.venv_path)
    return rt.unit_text(rank_service(inv, topology, replica, rank, rt))
