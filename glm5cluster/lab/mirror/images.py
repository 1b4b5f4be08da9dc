"""The images the mirror needs, built locally and cached by recipe hash.

* ``glm5cluster-lab-pybase:<hash>``: Debian bookworm minbase with python3 (debootstrap from the
  machine's Debian mirror, ``docker import``). The mirror container runs on it.
* ``glm5cluster-lab-sglang:<hash>``: pybase plus the simulated ``sglang`` wheel installed in
  ``/usr/local`` (``python3 -m sglang.launch_server`` and ``sglang serve`` work, as in the real
  image). Pushed into the registry seed as ``lmsysorg/sglang:v0.5.23`` and
  ``rocm/sgl-dev:v0.5.23-rocm720-mi30x``.
* the registry seed: a ``docker-registry`` storage directory holding those tags, made once by a
  registry run on this machine and ``skopeo copy``; every mirror serves it read-only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import docker
import docker.errors

from glm5cluster.errors import GlmError
from glm5cluster.lab.dockerd import STATE_DIR, Say, file_lock
from glm5cluster.lab.image import debian_mirror
from glm5cluster.lab.sim.sglang_sim.build import build_wheel

from .cache import cached_dir

SUITE = "bookworm"
PYBASE_REPO = "glm5cluster-lab-pybase"
SGLANG_REPO = "glm5cluster-lab-sglang"
PYBASE_PACKAGES = ("python3", "ca-certificates")
PYBASE_VERSION = "1"
SGLANG_TAGS = ("lmsysorg/sglang:v0.5.23", "rocm/sgl-dev:v0.5.23-rocm720-mi30x")
DEB_CACHE = Path("/var/cache/glm5cluster/debootstrap-pybase")
SITE = "usr/local/lib/python3.11/dist-packages"
REGISTRY_BIN = Path("/usr/bin/docker-registry")
CLEANUP = ("apt-get clean; rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/*;"
           " find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' -exec rm -rf {} +")


def _has(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def pybase_tag() -> str:
    recipe = json.dumps({"suite": SUITE, "pkgs": PYBASE_PACKAGES, "v": PYBASE_VERSION, "cleanup": CLEANUP})
    return f"{PYBASE_REPO}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def ensure_pybase(client: docker.DockerClient, say: Say | None) -> str:
    tag = pybase_tag()
    if _has(client, tag):
        return tag
    with file_lock(STATE_DIR / "mirror-pybase.lock"):
        if _has(client, tag):
            return tag
        t0 = time.monotonic()
        if say:
            say.print(f"mirror: building {tag} with debootstrap (about a minute, once)")
        DEB_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="glm5lab-pybase-", dir=STATE_DIR) as tmp:
            root = Path(tmp) / "root"
            argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PYBASE_PACKAGES)}",
                    f"--cache-dir={DEB_CACHE}", SUITE, str(root), debian_mirror()]
            res = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
            if res.returncode != 0:
                raise GlmError(f"debootstrap for the mirror base failed:\n{res.stdout[-1500:]}{res.stderr[-500:]}",
                               hint="check the machine's Debian mirror (apt sources)")
            subprocess.run(["chroot", str(root), "/bin/sh", "-c", CLEANUP], check=True)  # noqa: S603
            tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."],  # noqa: S603
                                   stdout=subprocess.PIPE)
            assert tar.stdout is not None
            repo, _, ver = tag.partition(":")
            client.api.import_image_from_stream(tar.stdout, repository=repo, tag=ver,
                                                changes=['CMD ["python3"]'])
            if tar.wait() != 0 or not _has(client, tag):
                raise GlmError(f"docker import of {tag} failed", hint="read the dockerd log")
        if say:
            say.print(f"mirror: {tag} built in {time.monotonic() - t0:.0f}s")
    return tag


def _wheel_tree(wheel: Path, tar: tarfile.TarFile) -> None:
    """Install a pure-Python wheel into the build context under ``root/`` (site + scripts)."""
    def add(name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(f"root/{name}")
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))

    with zipfile.ZipFile(wheel) as zf:
        entry_points = ""
        for name in zf.namelist():
            add(f"{SITE}/{name}", zf.read(name))
            if name.endswith(".dist-info/entry_points.txt"):
                entry_points = zf.read(name).decode()
    section = ""
    for line in entry_points.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[console_scripts]" and "=" in line:
            cmd, target = (s.strip() for s in line.split("=", 1))
            mod, func = target.split(":")
            script = f"#!/usr/bin/python3\nimport sys\nfrom {mod} import {func}\nsys.exit({func}())\n"
            add(f"usr/local/bin/{cmd}", script.encode(), 0o755)


def sglang_image(client: docker.DockerClient, say: Say | None) -> str:
    base = ensure_pybase(client, say)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(build_wheel(tmp))
        digest = hashlib.sha256(wheel.read_bytes() + base.encode()).hexdigest()[:12]
        tag = f"{SGLANG_REPO}:{digest}"
        if _has(client, tag):
            return tag
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            df = f'FROM {base}\nCOPY root/ /\nENV PYTHONUNBUFFERED=1\nCMD ["python3"]\n'.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(df)
            tar.addfile(info, io.BytesIO(df))
            _wheel_tree(wheel, tar)
        buf.seek(0)
    try:
        client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True,
                            network_mode="none", labels={"glm5cluster.lab-image": "sglang-sim"})
    except docker.errors.BuildError as e:
        raise GlmError(f"building {tag} failed: {e.msg}", hint="read the dockerd log") from e
    return tag


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def registry_config(root: str, addr: str, readonly: bool) -> str:
    return json.dumps({  # YAML is a superset of JSON
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": root}, "delete": {"enabled": False},
                    "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": readonly}}},
        "http": {"addr": addr, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    })


def _seed(out: Path, image: str, docker_host: str) -> None:
    if not REGISTRY_BIN.exists() or shutil.which("skopeo") is None:
        raise GlmError("the lab registry needs docker-registry and skopeo on this machine",
                       hint="apt-get install docker-registry skopeo (scripts/bootstrap)")
    port = _free_port()
    cfg = out / "config.yml"
    cfg.write_text(registry_config(str(out / "storage"), f"127.0.0.1:{port}", readonly=False))
    log = open(out / "registry.log", "wb")  # noqa: SIM115
    reg = subprocess.Popen([str(REGISTRY_BIN), "serve", str(cfg)], stdout=log, stderr=log)  # noqa: S603
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or reg.poll() is not None:
                    raise GlmError("the seeding registry did not start", hint=f"read {out}/registry.log") from None
                time.sleep(0.2)
        src = ["--src-daemon-host", docker_host, f"docker-daemon:{image}"]
        for tag in SGLANG_TAGS:
            argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *src, f"docker://127.0.0.1:{port}/{tag}"]
            res = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
            if res.returncode != 0:
                raise GlmError(f"skopeo copy to the seeding registry failed: {res.stderr[-800:]}",
                               hint="is the docker engine reachable at " + docker_host)
            src = ["--src-tls-verify=false", f"docker://127.0.0.1:{port}/{SGLANG_TAGS[0]}"]
    finally:
        reg.terminate()
        reg.wait(timeout=10)
        log.close()
    cfg.unlink()


def ensure_registry_seed(client: docker.DockerClient, say: Say | None) -> tuple[Path, str]:
    """(the seeded storage directory, the sglang image tag)."""
    image = sglang_image(client, say)
    docker_host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    key = image.split(":")[1]
    return cached_dir("registry", key, lambda out: _seed(out, image, docker_host)), image
