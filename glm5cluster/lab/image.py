"""The lab host image, built locally (there is no registry), cached by a hash of its recipe.

Two stages, each cached by its own hash, so that changing a baked-in file costs seconds:

1. base: ``debootstrap --variant=minbase`` of Debian bookworm with ``BASE_PACKAGES`` from the
   machine's own Debian mirror (read from its apt sources at run time), imported with
   ``docker import`` as ``glm5cluster-lab-base:<hash12>``.
2. host: ``docker build`` FROM the base, adding ``lab/data/rootfs`` (systemd units, sshd and
   docker settings), the GPU tool simulators (``lab/sim/gpu`` -> ``/opt/glm5lab/glm5lab_gpu``),
   and running ``/opt/glm5lab/setup.sh``; tagged ``glm5cluster-lab-host:<hash12>`` with
   ``CMD ["/sbin/init"]``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import docker
import docker.errors

from glm5cluster.errors import GlmError
from glm5cluster.lab.dockerd import STATE_DIR, Say, file_lock

SUITE = "bookworm"
BASE_REPO = "glm5cluster-lab-base"
HOST_REPO = "glm5cluster-lab-host"
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-venv", "python3-pip",
    "docker.io", "curl", "ca-certificates", "rsync", "iproute2", "procps", "sudo", "iputils-ping",
    "netcat-openbsd", "less", "kmod", "gnupg", "iptables",
)
# A recipe change that the hashes would not see (e.g. the chroot clean-up) bumps this.
RECIPE_VERSION = "1"
BUILD_DIR = STATE_DIR / "build"
DEB_CACHE = Path("/var/cache/glm5cluster/debootstrap")
LOCK = STATE_DIR / "image.lock"
LAB_DIR = Path(__file__).resolve().parent
ROOTFS_DIR = LAB_DIR / "data" / "rootfs"
GPU_SIM_DIR = LAB_DIR / "sim" / "gpu"
GPU_SIM_DEST = "opt/glm5lab/glm5lab_gpu"
SOURCES_GLOBS = ("/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list")


# ---------------------------------------------------------------- the Debian mirror

def debian_mirror(files: list[Path] | None = None) -> str:
    """The machine's Debian mirror (the URI that serves ``bookworm`` main), from its apt sources."""
    if files is None:
        files = []
        for pattern in SOURCES_GLOBS:
            base, _, glob = pattern.rpartition("/")
            files += sorted(Path(base).glob(glob)) if "*" in glob else [Path(pattern)]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (ln.partition(":") for ln in stanza.splitlines() if ln and not ln.startswith("#"))
                )
                if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
                    return fields.get("uris", "").split()[0]
        else:
            for ln in text.splitlines():
                parts = re.sub(r"\[[^\]]*\]", "", ln).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                    return parts[1]
    raise GlmError(
        f"no Debian {SUITE} mirror found in the apt sources ({', '.join(SOURCES_GLOBS)})",
        hint="add the site's Debian mirror to /etc/apt/sources.list.d/ and retry",
    )


# ---------------------------------------------------------------- recipe hashes

def _tree_files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"):
            out.append((p.relative_to(root).as_posix(), p))
    return out


def baked_files() -> list[tuple[str, Path]]:
    """(path inside the image, source file) for every file stage 2 adds."""
    files = _tree_files(ROOTFS_DIR)
    files += [(f"{GPU_SIM_DEST}/{rel}", p) for rel, p in _tree_files(GPU_SIM_DIR)]
    return files


def base_hash() -> str:
    recipe = {"suite": SUITE, "variant": "minbase", "packages": sorted(BASE_PACKAGES), "v": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def host_hash() -> str:
    h = hashlib.sha256(base_hash().encode())
    for rel, p in baked_files():
        h.update(rel.encode() + b"\0" + oct(p.stat().st_mode & 0o111).encode() + b"\0")
        h.update(p.read_bytes())
    h.update(DOCKERFILE.encode())
    return h.hexdigest()[:12]


def host_tag() -> str:
    return f"{HOST_REPO}:{host_hash()}"


# ---------------------------------------------------------------- stage 1: base

_CHROOT_CLEANUP = """set -e
rm -f /etc/ssh/ssh_host_*
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/info/*
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' -exec rm -rf {} +
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
"""


def _debootstrap(root: Path, mirror: str, say: Say | None) -> None:
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    argv = [
        "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
        f"--cache-dir={DEB_CACHE}", SUITE, str(root), mirror,
    ]
    log = BUILD_DIR / "debootstrap.log"
    for attempt in (1, 2):
        if root.exists():
            shutil.rmtree(root)  # a partial root from a failed try
        with open(log, "wb") as fh:
            rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode  # noqa: S603
        if rc == 0:
            return
        if say:
            say.print(f"lab: debootstrap failed (exit {rc}, attempt {attempt}); log {log}")
    shutil.rmtree(root, ignore_errors=True)
    raise GlmError(f"debootstrap of {SUITE} from {mirror} failed twice", hint=f"read {log}")


def build_base(client: docker.DockerClient, say: Say | None) -> str:
    tag = f"{BASE_REPO}:{base_hash()}"
    if _has_image(client, tag):
        return tag
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise GlmError(
            "building the lab base image needs root and debootstrap",
            hint="run as root after `apt-get install debootstrap` (scripts/bootstrap does it)",
        )
    mirror = debian_mirror()
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    root = BUILD_DIR / f"rootfs-{base_hash()}"
    t0 = time.monotonic()
    if say:
        say.print(f"lab: building the lab base image {tag} with debootstrap (a few minutes, once)")
    try:
        _debootstrap(root, mirror, say)
        subprocess.run(["chroot", str(root), "/bin/sh", "-c", _CHROOT_CLEANUP], check=True)  # noqa: S603
        tar = subprocess.Popen(  # noqa: S603
            ["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        )
        assert tar.stdout is not None
        repo, _, ver = tag.partition(":")
        client.api.import_image_from_stream(tar.stdout, repository=repo, tag=ver, changes=['CMD ["/sbin/init"]'])
        if tar.wait() != 0:
            raise GlmError("tar of the lab root failed", hint="see the messages above")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not _has_image(client, tag):
        raise GlmError(f"docker import did not produce {tag}", hint="read the dockerd log")
    if say:
        say.print(f"lab: base image {tag} built in {time.monotonic() - t0:.0f}s")
    return tag


# ---------------------------------------------------------------- stage 2: host

DOCKERFILE = """FROM {base}
COPY root/ /
RUN ["/bin/sh", "/opt/glm5lab/setup.sh"]
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
"""


def _context(base: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        df = DOCKERFILE.format(base=base).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
        for rel, p in baked_files():
            info = tarfile.TarInfo(f"root/{rel}")
            data = p.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if p.stat().st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_image(client: docker.DockerClient, say: Say | None = None) -> str:
    """The lab host image's tag, building what is missing (serialised across processes)."""
    tag = host_tag()
    if _has_image(client, tag):
        return tag
    with file_lock(LOCK):
        if _has_image(client, tag):
            return tag
        base = build_base(client, say)
        t0 = time.monotonic()
        try:
            client.images.build(
                fileobj=_context(base), custom_context=True, tag=tag, rm=True, forcerm=True,
                network_mode="none", labels={"glm5cluster.lab-image": host_hash()},
            )
        except docker.errors.BuildError as e:
            tail = "".join(str(x.get("stream", "")) for x in e.build_log)[-2000:]
            raise GlmError(f"building {tag} failed: {e.msg}\n{tail}", hint="fix the lab recipe") from e
        if say:
            say.print(f"lab: host image {tag} built in {time.monotonic() - t0:.0f}s")
        _prune_old_host_images(client, tag)
    return tag


def _prune_old_host_images(client: docker.DockerClient, keep: str) -> None:
    """Drop host images of earlier recipes that no container uses (ours only, by repository)."""
    for img in client.images.list(name=HOST_REPO):
        if keep in img.tags:
            continue
        for t in img.tags:
            try:
                client.images.remove(t, noprune=False)
            except docker.errors.APIError:
                pass  # still used by some lab's container: keep it
