"""``lab up`` / ``lab status`` / ``lab down``: a lab of simulated GPU hosts on one Docker engine.

Everything a lab makes carries the label ``glm5cluster.lab=<name>``; ``down`` removes exactly
what carries it. ``up`` reconciles: missing hosts are created, stopped ones started, running
ones left alone.
"""

from __future__ import annotations

import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container

from glm5cluster.errors import GlmError, InputError
from glm5cluster.lab import hosts as H
from glm5cluster.lab.addresses import MAX_HOSTS, host_address, mirror_address, mirror_endpoints
from glm5cluster.lab.dockerd import Say
from glm5cluster.lab.files import (
    LabSettings,
    ensure_key,
    lab_dir,
    write_inventory,
    write_known_hosts,
)
from glm5cluster.lab.image import ensure_image
from glm5cluster.model.inventory import GpuKind

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")
GPU_KINDS = tuple(k.value for k in GpuKind)  # every kind the inventory (and catalog) knows
READY_TIMEOUT = 120.0  # boot deadline of a small lab; larger labs get READY_PER_HOST more per host
READY_PER_HOST = 4.0  # measured: 64 hosts boot in ~2-4 min on 2 loaded cores (README, 64-host lab)
CREATE_WORKERS = 8  # containers created at once (the docker API serialises much of it anyway)
READY_WORKERS = 16


def ready_timeout(hosts: int) -> float:
    """Seconds the whole lab may take to boot: fixed for a few hosts, growing with a large lab."""
    return READY_TIMEOUT + READY_PER_HOST * max(0, hosts - 4)


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    container: str
    state: str  # container status
    system: str  # systemd's is-system-running, or "" when not asked


@dataclass(frozen=True)
class LabInfo:
    name: str
    network: str
    subnet: str
    hosts: list[LabHost]
    dir: str
    inventory: str
    key: str
    known_hosts: str


def network_name(name: str) -> str:
    return f"glm5lab-{name}"


def parse_overrides(items: list[str], hosts: int) -> dict[str, dict[str, str]]:
    """``node-2:gpus=4`` / ``node-3:driver=none,gpus=2`` -> {host: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    names = {f"node-{i}" for i in range(1, hosts + 1)}
    for item in items:
        host, _, rest = item.partition(":")
        if host not in names or not rest:
            raise InputError(f"bad --host-override {item!r}", hint=f"HOST:key=value with HOST one of node-1..node-{hosts}")
        for kv in rest.split(","):
            k, _, v = kv.partition("=")
            if k not in ("gpus", "driver", "gpu") or not v:
                raise InputError(f"bad --host-override {item!r}", hint="keys: gpus=N, driver=VERSION|none, gpu=KIND")
            if k == "gpus" and not (v.isdigit() and 1 <= int(v) <= 16):
                raise InputError(f"bad --host-override {item!r}: gpus must be 1..16")
            if k == "gpu" and v not in GPU_KINDS:  # the inventory's spelling, exactly
                raise InputError(f"bad --host-override {item!r}: gpu must be one of {', '.join(GPU_KINDS)}")
            out.setdefault(host, {})[k] = v
    return out


def plans(s: LabSettings) -> list[H.HostPlan]:
    out = []
    for i in range(1, s.hosts + 1):
        hname = f"node-{i}"
        ov = s.overrides.get(hname, {})
        kind = ov.get("gpu", s.gpu).upper()
        default_drv = H.AMD_DRIVER if kind.startswith("MI") else H.NVIDIA_DRIVER
        drv = ov.get("driver", default_drv)
        out.append(H.HostPlan(
            lab=s.name, hostname=hname, address=host_address(s.subnet, i), gpu_kind=kind,
            gpu_count=int(ov.get("gpus", s.gpus_per_node)), driver=None if drv == "none" else drv,
            sudo_user=i > s.hosts - s.sudo_user_hosts, docker_on_demand=s.docker_on_demand,
        ))
    return out


def _ensure_network(client: docker.DockerClient, s: LabSettings) -> None:
    name = network_name(s.name)
    try:
        net = client.networks.get(name)
    except docker.errors.NotFound:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=s.subnet)])
        try:
            client.networks.create(name, driver="bridge", ipam=ipam, labels={H.LABEL: s.name})
        except docker.errors.APIError as e:
            raise GlmError(f"cannot create the lab network {name} on {s.subnet}: {e.explanation}",
                           hint="pick another --subnet (it may overlap an existing network)") from e
        return
    have = [c.get("Subnet") for c in (net.attrs.get("IPAM", {}).get("Config") or [])]
    if s.subnet not in have:
        raise GlmError(f"lab network {name} exists with subnet {have}, not {s.subnet}",
                       hint=f"`glm5cluster lab down --name {s.name}` first, or use --subnet {have[0] if have else ''}")


def _containers(client: docker.DockerClient, name: str) -> dict[str, Container]:
    found = client.containers.list(all=True, filters={"label": f"{H.LABEL}={name}"})
    return {c.labels.get(H.HOST_LABEL, c.name): c for c in found
            if c.labels.get("glm5cluster.lab.role") != "mirror"}


def up(client: docker.DockerClient, s: LabSettings, say: Say | None = None) -> LabInfo:
    if not NAME_RE.match(s.name):
        raise InputError(f"bad lab name {s.name!r}", hint="lowercase letters, digits and '-', at most 20")
    if not 1 <= s.hosts <= MAX_HOSTS:
        raise InputError(f"--hosts must be 1..{MAX_HOSTS}")
    t0 = time.monotonic()
    image = ensure_image(client, say)
    lab_dir(s.name).mkdir(parents=True, exist_ok=True, mode=0o700)
    key, pub = ensure_key(s.name)
    s.save()
    _ensure_network(client, s)
    if s.mirror:
        from glm5cluster.lab.mirror import HubSpec, ensure_mirror

        hub = HubSpec(shards=s.hub_shards, shard_mb=s.hub_shard_mb, rate_mbps=s.hub_rate_mbps,
                      token=s.hub_token or None)
        ensure_mirror(client, s.name, network_name(s.name), mirror_address(s.subnet), lab_dir(s.name), say, hub=hub)
    wanted = plans(s)
    etc_hosts = {p.hostname: p.address for p in wanted}
    m = mirror_endpoints(s.subnet)
    daemon_json: dict[str, object] = {"iptables": False, "ip-masq": False, "insecure-registries": [m.registry],
                                      "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "2"}}
    have = _containers(client, s.name)
    to_create = [p for p in wanted if p.hostname not in have]
    started = [p.hostname for p in wanted
               if p.hostname in have and have[p.hostname].status not in ("running", "restarting")]
    for hname in started:
        have[hname].start()
    if say and to_create:
        say.print(f"lab {s.name}: creating {len(to_create)} hosts ({min(CREATE_WORKERS, len(to_create))} at a time)")
    _create_all(client, image, to_create, network_name(s.name), etc_hosts, pub, daemon_json, say)
    created = [p.hostname for p in to_create]
    if say and (created or started):
        shown = created if len(created) <= 8 else f"{len(created)} hosts"
        say.print(f"lab {s.name}: created {shown or 'none'}, started {started or 'none'}; waiting for boot")
    deadline = time.monotonic() + ready_timeout(len(wanted))
    containers = _containers(client, s.name)
    booted: list[str] = []

    def ready(p: H.HostPlan) -> tuple[str, list[str]]:
        c = containers[p.hostname]
        state = H.wait_ready(c, p.address, deadline)
        keys = H.host_keys(c)
        booted.append(p.hostname)
        if say and len(wanted) > 8 and len(booted) % 8 == 0:
            say.print(f"lab {s.name}: {len(booted)}/{len(wanted)} hosts booted ({time.monotonic() - t0:.0f}s)")
        return state, keys

    with ThreadPoolExecutor(max_workers=min(READY_WORKERS, len(wanted))) as pool:
        results = dict(zip([p.hostname for p in wanted], pool.map(ready, wanted), strict=True))
    write_known_hosts(s.name, {p.address: results[p.hostname][1] for p in wanted})
    write_inventory(s, [(p.hostname, p.address, p.gpu_kind, p.gpu_count, p.sudo_user) for p in wanted])
    if say:
        # the inventory path is the command's stdout (once): `lab_cmd` prints it
        say.print(f"lab {s.name}: {len(wanted)} hosts ready in {time.monotonic() - t0:.1f}s")
    return status(client, s.name, systemd=False)


def _create_all(client: docker.DockerClient, image: str, plans_: list[H.HostPlan], network: str,
                etc_hosts: dict[str, str], pub: str, daemon_json: dict[str, object], say: Say | None) -> None:
    """Create (and start) the missing hosts, CREATE_WORKERS at a time, with progress for a large lab."""
    if not plans_:
        return
    done: list[str] = []
    t0 = time.monotonic()

    def one(p: H.HostPlan) -> None:
        H.create(client, image, p, network, etc_hosts, H.host_files(p, pub, daemon_json))
        done.append(p.hostname)
        if say and len(plans_) > 8 and len(done) % 8 == 0:
            say.print(f"  created {len(done)}/{len(plans_)} ({time.monotonic() - t0:.0f}s)")

    with ThreadPoolExecutor(max_workers=min(CREATE_WORKERS, len(plans_))) as pool:
        list(pool.map(one, plans_))


def status(client: docker.DockerClient, name: str, systemd: bool = True) -> LabInfo:
    s = LabSettings.load(name)
    containers = _containers(client, name)
    out = []
    for hname, c in sorted(containers.items(), key=lambda kv: (len(kv[0]), kv[0])):
        nets = c.attrs.get("NetworkSettings", {}).get("Networks", {}) or {}
        addr = (nets.get(network_name(name)) or {}).get("IPAddress", "")
        sysstate = ""
        if systemd and c.status == "running":
            try:
                sysstate = H.exec_text(c, ["systemctl", "is-system-running"])[1].strip()
            except docker.errors.APIError:
                sysstate = "?"
        out.append(LabHost(hname, addr, c.name, c.status, sysstate))
    subnet = s.subnet if s else ""
    if not subnet:
        try:
            cfg = client.networks.get(network_name(name)).attrs.get("IPAM", {}).get("Config") or []
            subnet = cfg[0].get("Subnet", "") if cfg else ""
        except docker.errors.NotFound:
            pass
    d = lab_dir(name)
    return LabInfo(
        name=name, network=network_name(name), subnet=subnet, hosts=out, dir=str(d),
        inventory=str(d / "inventory.yaml"), key=str(d / "id_ed25519"), known_hosts=str(d / "known_hosts"),
    )


def known_labs(client: docker.DockerClient) -> list[str]:
    names = {c.labels[H.LABEL] for c in client.containers.list(all=True, filters={"label": H.LABEL})}
    names |= {n.attrs.get("Labels", {}).get(H.LABEL, "") for n in client.networks.list(filters={"label": H.LABEL})}
    return sorted(n for n in names if n)


def down(client: docker.DockerClient, name: str, say: Say | None = None) -> dict[str, int]:
    """Remove every container, network and volume labelled for this lab, and its files."""
    flt = {"label": f"{H.LABEL}={name}"}
    counts = {"containers": 0, "networks": 0, "volumes": 0}
    containers = client.containers.list(all=True, filters=flt)

    def rm(c: Container) -> None:
        try:
            c.remove(force=True, v=False)
        except docker.errors.NotFound:
            pass

    if containers:
        with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
            list(pool.map(rm, containers))
    counts["containers"] = len(containers)
    for n in client.networks.list(filters=flt):
        n.remove()
        counts["networks"] += 1
    for v in client.volumes.list(filters=flt):
        v.remove(force=True)
        counts["volumes"] += 1
    shutil.rmtree(lab_dir(name), ignore_errors=True)
    if say:
        say.print(f"lab {name}: removed {counts['containers']} containers, {counts['networks']} networks, "
                  f"{counts['volumes']} volumes")
    return counts
