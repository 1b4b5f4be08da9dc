"""Key pinning: the node-side check (python3, no gpg) computes the same fingerprints as gpg,
accepts only pinned keys, and installs the binary keyring apt reads."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from glm5cluster.tasks.trust import keycheck


def gpg(home: Path, *args: str) -> bytes:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", "--no-tty", *args],
                          capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    home = tmp_path_factory.mktemp("gpg")
    home.chmod(0o700)
    gpg(home, "--passphrase", "", "--quick-gen-key", "a <a@x.invalid>", "ed25519", "sign", "never")
    gpg(home, "--passphrase", "", "--quick-gen-key", "b <b@x.invalid>", "rsa2048", "sign", "never")
    out = gpg(home, "--with-colons", "--list-keys").decode().splitlines()
    fprs = [out[i + 1].split(":")[9] for i, ln in enumerate(out) if ln.startswith("pub:")]
    assert len(fprs) == 2
    return home, fprs


def check(src: Path, out: str, pins: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", keycheck(shlex.quote(str(src)), out, pins)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("armor", [False, True])
def test_pinned_key_verified_and_installed_binary(tmp_path: Path, keys: tuple[Path, list[str]], armor: bool) -> None:
    home, (a, b) = keys
    src = tmp_path / "key"
    src.write_bytes(gpg(home, *(["--armor"] if armor else []), "--export", a))
    dest = tmp_path / "keyring.gpg"
    r = check(src, str(dest), [a.lower(), "0" * 40])
    assert r.returncode == 0 and f"verified {a}" in r.stdout, r.stderr
    assert dest.read_bytes() == gpg(home, "--export", a) and oct(dest.stat().st_mode & 0o777) == "0o644"


def test_unpinned_key_refused_and_nothing_installed(tmp_path: Path, keys: tuple[Path, list[str]]) -> None:
    home, (a, b) = keys
    src = tmp_path / "key"
    src.write_bytes(gpg(home, "--armor", "--export", a, b))  # one pinned key plus one that is not
    dest = tmp_path / "keyring.gpg"
    r = check(src, str(dest), [a])
    assert r.returncode != 0 and f"key {b} is not pinned" in r.stderr and not dest.exists()
    assert check(src, "-", [a, b]).returncode == 0


def test_garbage_refused(tmp_path: Path) -> None:
    src = tmp_path / "key"
    src.write_text("<html>mirror error page</html>")
    r = check(src, "-", ["A" * 40])
    assert r.returncode != 0 and "not an OpenPGP key file" in r.stderr
    src.write_bytes(b"")
    assert check(src, "-", ["A" * 40]).returncode != 0


def test_the_committed_lab_key_is_the_one_the_lab_inventories_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import tempfile

    from glm5cluster.lab.addresses import LAB_KEY_FINGERPRINT
    from glm5cluster.lab.mirror.gpg import lab_key, stop_agent

    short = tempfile.mkdtemp(prefix="g5k-")  # gpg-agent's socket path must stay short
    monkeypatch.setenv("XDG_CACHE_HOME", short)
    try:
        key = lab_key()
        stop_agent(key)
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert key.fingerprint == LAB_KEY_FINGERPRINT
    src = tmp_path / "k.asc"
    src.write_bytes(key.armored)
    assert check(src, "-", [LAB_KEY_FINGERPRINT]).returncode == 0
