"""Build a stand-in ``.deb`` from its recipe with ``dpkg-deb`` (no equivs or debhelper needed)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from glm5cluster.errors import GlmError
from glm5cluster.lab.sim.standins import KEYRING, Deb

MAINTAINER = "glm5cluster lab <mirror@glm5lab.invalid>"


def control(deb: Deb, installed_kib: int) -> str:
    fields = [
        ("Package", deb.name), ("Version", deb.version), ("Architecture", deb.arch),
        ("Maintainer", MAINTAINER), ("Installed-Size", str(installed_kib)),
        ("Depends", ", ".join(deb.depends)), ("Conflicts", ", ".join(deb.conflicts)),
        ("Provides", ", ".join(deb.provides)), ("Section", deb.section), ("Priority", "optional"),
    ]
    text = "".join(f"{k}: {v}\n" for k, v in fields if v)
    return text + f"Description: {deb.description}\n glm5cluster lab stand-in: the real package name and version, no real driver.\n"


def build_deb(deb: Deb, out_dir: Path, keyring: bytes) -> tuple[Path, str]:
    """Write ``out_dir/<deb.filename>``; answer its path and its control paragraph."""
    with tempfile.TemporaryDirectory(prefix="glm5lab-deb-") as tmp:
        root = Path(tmp) / "root"
        size = 0
        conffiles = []
        for f in deb.files:
            dest = root / f.dest.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if f.link:
                os.symlink(f.link, dest)
                continue
            data = keyring if f.source == KEYRING else deb.content(f)
            dest.write_bytes(data)
            dest.chmod(f.mode)
            size += len(data)
            if f.dest.startswith("/etc/"):
                conffiles.append(f.dest)
        meta = root / "DEBIAN"
        meta.mkdir(parents=True)
        ctl = control(deb, max(1, size // 1024))
        (meta / "control").write_text(ctl)
        if conffiles:
            (meta / "conffiles").write_text("".join(c + "\n" for c in conffiles))
        for name, text in deb.scripts.items():
            script = meta / name
            script.write_text(deb.render(text))
            script.chmod(0o755)
        out = out_dir / deb.filename
        argv = ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(root), str(out)]
        res = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        if res.returncode != 0:
            raise GlmError(f"dpkg-deb failed for {deb.name}: {res.stderr.strip()}", hint="fix the stand-in recipe")
    return out, ctl
