"""Write the stand-in apt repositories (flat, or ``dists/<suite>/<component>``), signed.

Layout under the mirror's apt root mirrors the vendors' URLs, so a site's mirror base simply
replaces ``https://developer.download.nvidia.com/compute`` (CUDA), ``https://nvidia.github.io``
(container toolkit) or ``https://repo.radeon.com`` (AMD).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import time
from pathlib import Path

from glm5cluster.lab.sim.standins import Repo

from .debs import build_deb
from .gpg import LabKey, sign, stop_agent

KEYRING_PATHS = ("keys/glm5lab-archive-keyring.gpg",)
ARMORED_PATHS = ("keys/glm5lab-archive-keyring.asc", "libnvidia-container/gpgkey", "rocm/rocm.gpg.key")


def _hashes(data: bytes) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256")}


def _stanza(control: str, filename: str, data: bytes) -> str:
    h = _hashes(data)
    return (control.rstrip("\n") + f"\nFilename: {filename}\nSize: {len(data)}\n"
            f"MD5sum: {h['md5']}\nSHA1: {h['sha1']}\nSHA256: {h['sha256']}\n")


def _release(index_dir: Path, files: list[str], fields: dict[str, str]) -> Path:
    lines = [f"{k}: {v}" for k, v in fields.items() if v]
    lines.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()))
    for label, algo in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        lines.append(f"{label}:")
        for rel in files:
            data = (index_dir / rel).read_bytes()
            lines.append(f" {hashlib.new(algo, data).hexdigest()} {len(data):>8} {rel}")
    path = index_dir / "Release"
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_packages(path: Path, stanzas: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(stanzas).encode()
    path.write_bytes(text)
    path.with_name("Packages.gz").write_bytes(gzip.compress(text, mtime=0))


def write_repo(root: Path, repo: Repo, key: LabKey, built: dict[str, tuple[Path, str]]) -> None:
    """Write one repository; ``built`` caches debs by filename (shared between repositories)."""
    base = root / repo.path
    stanzas = []
    for deb in repo.packages:
        if deb.filename not in built:
            built[deb.filename] = build_deb(deb, root.parent / "debs", key.public)
        src, ctl = built[deb.filename]
        if repo.flat:
            rel, dest = f"./{deb.filename}", base / deb.filename
        else:
            rel = f"pool/{repo.component}/{deb.name[0]}/{deb.name}/{deb.filename}"
            dest = base / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            shutil.copyfile(src, dest)
        stanzas.append(_stanza(ctl, rel, dest.read_bytes()))
    fields = {"Origin": repo.origin, "Label": repo.label, "Architectures": "amd64 all"}
    if repo.flat:
        _write_packages(base / "Packages", stanzas)
        release = _release(base, ["Packages", "Packages.gz"], fields)
    else:
        index = base / "dists" / repo.suite
        sub = f"{repo.component}/binary-amd64"
        _write_packages(index / sub / "Packages", stanzas)
        fields.update({"Suite": repo.suite, "Codename": repo.suite, "Components": repo.component})
        release = _release(index, [f"{sub}/Packages", f"{sub}/Packages.gz"], fields)
    sign(key, release)


def write_all(root: Path, repos: list[Repo], key: LabKey) -> None:
    """Every repository under ``root`` (the mirror's apt root), plus the keys."""
    built: dict[str, tuple[Path, str]] = {}
    (root.parent / "debs").mkdir(exist_ok=True)
    try:
        for repo in repos:
            write_repo(root, repo, key, built)
    finally:
        stop_agent(key)
    for rel in KEYRING_PATHS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(key.public)
    for rel in ARMORED_PATHS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(key.armored)
