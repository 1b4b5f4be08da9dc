"""Build (or find in the cache) everything a mirror serves; each part keyed by its recipe."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import docker

from glm5cluster.lab.dockerd import Say
from glm5cluster.lab.sim import standins

from . import aptrepo, debs
from .cache import cached_dir, tree_hash
from .gpg import lab_key
from .images import ensure_pybase, ensure_registry_seed
from .pyindex import build_index, index_key

STANDINS_DIR = Path(standins.__file__).resolve().parent
HUB_DIR = Path(__file__).resolve().parents[1] / "sim" / "hub"
FORMAT = "1"  # bump when the layout changes in a way the hashes do not see


@dataclass(frozen=True)
class HubSpec:
    """The model hub's repositories and link: ``shards`` x ``shard_mb`` MiB per repository,
    ``rate_mbps`` the TOTAL cap shared by every client (the site's WAN link; 0: none)."""

    shards: int = 8
    shard_mb: float = 4.0
    rate_mbps: float = 0.0
    conn_rate_mbps: float = 0.0
    token: str | None = None  # when set, the hub requires `Authorization: Bearer <token>`


@dataclass(frozen=True)
class Content:
    apt: Path
    pypi: Path
    registry: Path
    hub: Path
    pybase: str  # the image the mirror container runs
    sglang_image: str  # the local tag behind lmsysorg/sglang:v0.5.23
    fingerprint: str
    key: str  # one hash over all parts

    @property
    def keyring(self) -> Path:
        return self.apt / "apt" / aptrepo.KEYRING_PATHS[0]


def _hub(out: Path, spec: HubSpec) -> None:
    from glm5cluster.lab.sim.hub import repo as hubrepo
    from glm5cluster.lab.sim.hub.server import prepare_data

    prepare_data(str(out), spec.shards, int(spec.shard_mb * 1024 * 1024))
    for repo_id in hubrepo.REPOS:  # hash once here, so the read-only copy is served as is
        d = out.joinpath(*repo_id.split("/"))
        hubrepo.file_metadata(str(d), str(out / ".meta" / (repo_id.replace("/", "__") + ".json")))


def build_content(client: docker.DockerClient, hub: HubSpec, say: Say | None) -> Content:
    key = lab_key()
    apt_key = tree_hash([STANDINS_DIR, Path(aptrepo.__file__), Path(debs.__file__)], FORMAT, key.fingerprint)
    apt = cached_dir("apt", apt_key, lambda out: aptrepo.write_all(out / "apt", standins.repos(), key))
    pypi = cached_dir("pypi", index_key(), build_index)
    pybase = ensure_pybase(client, say)
    registry, image = ensure_registry_seed(client, say)
    hub_key = tree_hash([HUB_DIR / "repo.py"], FORMAT, str(hub.shards), repr(float(hub.shard_mb)))
    hub_dir = cached_dir("hub", hub_key, lambda out: _hub(out, hub))
    total = hashlib.sha256("/".join((apt.name, pypi.name, registry.name, hub_dir.name, pybase)).encode())
    return Content(apt, pypi, registry, hub_dir, pybase, image, key.fingerprint, total.hexdigest()[:16])
