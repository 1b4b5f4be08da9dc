"""The lab archive key: one fixed OpenPGP key (``lab/data/mirror-key``, public on purpose: it only
signs the lab's stand-in packages), imported into a cached gpg home, signing every lab apt
repository. Fixed, so the lab inventories can pin its fingerprint
(``stack.nvidia.*_key_fingerprints``) the same on every machine.

Hosts trust it through the keyring files the stand-in ``cuda-keyring`` / ``amdgpu-install``
packages install, or the copies the mirror serves (``keys/glm5lab-archive-keyring.gpg``, and
ASCII-armoured at the vendors' usual key URLs).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from glm5cluster.errors import GlmError
from glm5cluster.lab.addresses import LAB_KEY_FINGERPRINT

from .cache import cache_root, locked

KEY_FILE = Path(__file__).resolve().parents[1] / "data" / "mirror-key" / "lab-archive-key.asc"

UID = "glm5lab archive signing key <mirror@glm5lab.invalid>"


@dataclass(frozen=True)
class LabKey:
    home: Path
    fingerprint: str
    public: bytes  # binary keyring (for signed-by=)
    armored: bytes


def _gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    argv = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--no-tty", *args]
    res = subprocess.run(argv, input=data, capture_output=True, check=False)  # noqa: S603
    if res.returncode != 0:
        raise GlmError(f"gpg {' '.join(args[:2])} failed: {res.stderr.decode(errors='replace')[-500:]}",
                       hint="is gnupg installed? (scripts/bootstrap)")
    return res.stdout


def lab_key() -> LabKey:
    home = cache_root() / "mirror" / "gpg-fixed"
    with locked(cache_root() / "mirror" / ".gpg.lock"):
        if not (home / "fingerprint").exists():
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            _gpg(home, "--import", data=KEY_FILE.read_bytes())
            out = _gpg(home, "--with-colons", "--list-secret-keys").decode()
            fpr = next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:"))
            if fpr != LAB_KEY_FINGERPRINT:
                raise GlmError(f"the lab key in {KEY_FILE} has fingerprint {fpr}, not {LAB_KEY_FINGERPRINT}",
                               hint="restore the file from git")
            (home / "fingerprint").write_text(fpr + "\n")
    fpr = (home / "fingerprint").read_text().strip()
    return LabKey(home, fpr, _gpg(home, "--export", fpr), _gpg(home, "--armor", "--export", fpr))


def stop_agent(key: LabKey) -> None:
    """gpg starts an agent for the key's home; stop it when signing is done."""
    subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"],  # noqa: S603, S607
                   capture_output=True, check=False)


def sign(key: LabKey, release: Path) -> None:
    """``InRelease`` (clear-signed) and ``Release.gpg`` (detached) beside ``release``."""
    base = ["--local-user", key.fingerprint, "--digest-algo", "SHA512", "--yes"]
    _gpg(key.home, *base, "--clearsign", "--output", str(release.with_name("InRelease")), str(release))
    _gpg(key.home, *base, "--armor", "--detach-sign", "--output", str(release.with_name("Release.gpg")), str(release))
