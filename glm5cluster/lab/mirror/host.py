"""The mirror host: container ``glm5lab-<lab>-mirror`` at the mirror address of the lab network."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker
import docker.errors

from glm5cluster.errors import GlmError
from glm5cluster.lab.addresses import APT_PORT, HUB_PORT, PYPI_PORT, REGISTRY_PORT
from glm5cluster.lab.dockerd import Say

from .content import Content, HubSpec, build_content
from .images import REGISTRY_BIN, SGLANG_TAGS

LABEL = "glm5cluster.lab"  # the lab's label: `lab down` removes what carries it
ROLE_LABEL = "glm5cluster.lab.role"
KEY_LABEL = "glm5cluster.lab.mirror-content"
PKG_DIR = Path(__file__).resolve().parents[2]  # the glm5cluster package
READY_TIMEOUT = 60.0


def container_name(lab_name: str) -> str:
    return f"glm5lab-{lab_name}-mirror"


@dataclass(frozen=True)
class MirrorInfo:
    """What lab hosts (and the lab inventory) use to reach the mirror."""

    container: str
    address: str
    apt_url: str  # root of the vendor-shaped apt tree, e.g. http://172.28.77.2:8081
    keyring_url: str  # the lab archive key (binary keyring, for signed-by=)
    pypi_url: str  # PEP 503 index: pip install --index-url URL --trusted-host ADDRESS
    registry: str  # host:port (an insecure registry for the hosts' dockerd)
    images: dict[str, str]  # real tag -> pullable reference on the mirror
    hub_url: str  # HF_ENDPOINT
    hub_repos: tuple[str, ...]
    key_fingerprint: str
    hub: dict[str, object] = field(default_factory=dict)

    def cuda_repo(self, distro: str = "debian12") -> str:
        return f"{self.apt_url}/cuda/repos/{distro}/x86_64/"

    def cuda_source(self, distro: str = "debian12") -> str:
        """The line for /etc/apt/sources.list.d/cuda-<distro>-x86_64.list (replaces cuda-keyring's)."""
        return f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {self.cuda_repo(distro)} /"

    def toolkit_source(self) -> str:
        """The line for /etc/apt/sources.list.d/nvidia-container-toolkit.list."""
        return (f"deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] "
                f"{self.apt_url}/libnvidia-container/stable/deb/$(ARCH) /")

    def rocm_sources(self, suite: str = "jammy") -> list[str]:
        opts = "[arch=amd64 signed-by=/etc/apt/keyrings/rocm.gpg]"
        return [f"deb {opts} {self.apt_url}/amdgpu/30.30/ubuntu {suite} main",
                f"deb {opts} {self.apt_url}/rocm/apt/7.2 {suite} main",
                f"deb {opts} {self.apt_url}/amd-container-toolkit/apt {suite} main"]


def _info(name: str, address: str, content: Content, hub: HubSpec) -> MirrorInfo:
    from glm5cluster.lab.sim.hub.repo import REPOS

    apt = f"http://{address}:{APT_PORT}"
    registry = f"{address}:{REGISTRY_PORT}"
    return MirrorInfo(
        container=name, address=address, apt_url=apt, keyring_url=f"{apt}/keys/glm5lab-archive-keyring.gpg",
        pypi_url=f"http://{address}:{PYPI_PORT}/simple", registry=registry,
        images={t: f"{registry}/{t}" for t in SGLANG_TAGS}, hub_url=f"http://{address}:{HUB_PORT}",
        hub_repos=tuple(REPOS), key_fingerprint=content.fingerprint,
        hub={"shards": hub.shards, "shard_mb": hub.shard_mb, "rate_mbps": hub.rate_mbps},
    )


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _create(client: docker.DockerClient, name: str, lab: str, network: str, address: str,
            content: Content, hub: HubSpec, key: str) -> None:
    ro = "ro"
    binds = {
        str(content.apt / "apt"): {"bind": "/srv/mirror/apt", "mode": ro},
        str(content.pypi): {"bind": "/srv/mirror/pypi", "mode": ro},
        str(content.registry): {"bind": "/srv/mirror/registry", "mode": ro},
        str(content.hub): {"bind": "/srv/mirror/hub", "mode": ro},
        str(PKG_DIR): {"bind": "/opt/glm5cluster/glm5cluster", "mode": ro},
        str(REGISTRY_BIN): {"bind": "/usr/local/bin/docker-registry", "mode": ro},
    }
    api = client.api
    host_config = api.create_host_config(binds=binds, restart_policy={"Name": "unless-stopped"})
    endpoint = api.create_endpoint_config(ipv4_address=address, aliases=["mirror"])
    cmd = ["python3", "/opt/glm5cluster/glm5cluster/lab/mirror/serve.py",
           "--apt-port", str(APT_PORT), "--pypi-port", str(PYPI_PORT), "--registry-port", str(REGISTRY_PORT),
           "--hub-port", str(HUB_PORT), "--hub-shards", str(hub.shards), "--hub-shard-mb", str(hub.shard_mb),
           "--hub-rate-mbps", str(hub.rate_mbps), "--hub-conn-rate-mbps", str(hub.conn_rate_mbps)]
    if hub.token:
        cmd += ["--hub-token-file", "/etc/glm5lab-mirror/hub-token"]
    cid = api.create_container(
        content.pybase, command=cmd, name=name, hostname="mirror", host_config=host_config,
        labels={LABEL: lab, ROLE_LABEL: "mirror", KEY_LABEL: key},
        networking_config=api.create_networking_config({network: endpoint}),
        volumes=[b["bind"] for b in binds.values()],
    )["Id"]
    if hub.token:
        api.put_archive(cid, "/", _tar({"etc/glm5lab-mirror/hub-token": (hub.token.encode(), 0o600)}))
    api.start(cid)


def _probe(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - lab URL
        return True
    except urllib.error.HTTPError as e:
        return e.code < 500
    except OSError:
        return False


def wait_ready(info: MirrorInfo, deadline: float, container: object | None = None) -> None:
    urls = [info.keyring_url, info.pypi_url + "/", f"http://{info.registry}/v2/", info.hub_url + "/api/whoami-v2"]
    pending = list(urls)
    while pending:
        pending = [u for u in pending if not _probe(u)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise GlmError(f"the lab mirror {info.container} does not answer at {', '.join(pending)}",
                           hint=f"docker exec {info.container} tail /var/log/glm5lab-mirror/*.log")
        time.sleep(0.3)


def ensure_mirror(client: docker.DockerClient, lab_name: str, network: str, address: str,
                  workdir: Path | str, console: Say | None = None, hub: HubSpec | None = None) -> MirrorInfo:
    """The lab's mirror host, running and answering; built, started or replaced as needed.

    ``network`` is the lab network's name, ``address`` the mirror address on it
    (``addresses.mirror_address(subnet)``), ``workdir`` the lab's directory on this machine
    (``mirror.json`` and the archive keyring are written there)."""
    hub = hub or HubSpec()
    t0 = time.monotonic()
    content = build_content(client, hub, console)
    extra = json.dumps([hub.rate_mbps, hub.conn_rate_mbps, hub.token or "", address, APT_PORT, PYPI_PORT, HUB_PORT])
    key = f"{content.key}-{hashlib.sha256(extra.encode()).hexdigest()[:8]}"
    name = container_name(lab_name)
    try:
        c = client.containers.get(name)
    except docker.errors.NotFound:
        c = None
    if c is not None:
        if c.labels.get(LABEL) != lab_name or c.labels.get(ROLE_LABEL) != "mirror":
            raise GlmError(f"a container named {name} exists and is not this lab's mirror",
                           hint=f"remove it yourself, or choose another lab name than {lab_name!r}")
        if c.labels.get(KEY_LABEL) != key:
            c.remove(force=True)
            c = None
        elif c.status != "running":
            c.start()
    if c is None:
        _create(client, name, lab_name, network, address, content, hub, key)
    info = _info(name, address, content, hub)
    wait_ready(info, time.monotonic() + READY_TIMEOUT)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(content.keyring, work / "glm5lab-archive-keyring.gpg")
    (work / "mirror.json").write_text(json.dumps(asdict(info), indent=1) + "\n")
    if console:
        console.print(f"lab {lab_name}: mirror {name} at {address} ready in {time.monotonic() - t0:.1f}s")
    return info
