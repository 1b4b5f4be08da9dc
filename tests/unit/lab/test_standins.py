"""The stand-in package recipes, the .debs built from them, the signed repositories, and the
container-toolkit stand-ins' logic (daemon.json edit, device selection, injection, hooks)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from glm5cluster.lab.sim.standins import DRIVER_VERSIONS, TOOLKIT_VERSIONS, repos
from glm5cluster.lab.sim.standins.recipe import FILES

REAL_NAMES = {  # gpu-stack.md: the names the install path uses
    "cuda-keyring", "nvidia-open", "nvidia-open-580", "nvidia-driver-580-open", "nvidia-dkms-580-open",
    "libnvidia-compute-580", "nvidia-driver-pinning-580", "nvidia-fabricmanager-580", "nvidia-fabricmanager",
    "nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
    "libnvidia-container1", "amdgpu-dkms", "rocm", "amd-container-toolkit", "amdgpu-install",
}


def _all_debs() -> dict[tuple[str, str], object]:
    return {(d.name, d.version): d for r in repos() for d in r.packages}


def test_real_names_and_versions_present() -> None:
    debs = _all_debs()
    names = {n for n, _ in debs}
    assert REAL_NAMES <= names
    for v in DRIVER_VERSIONS:
        assert ("nvidia-open-580", f"{v}-1") in debs
    for v in TOOLKIT_VERSIONS:
        assert ("nvidia-container-toolkit", f"{v}-1") in debs


def test_every_dependency_resolves_inside_its_repository() -> None:
    for repo in repos():
        have = {(d.name, d.version) for d in repo.packages}
        names = {d.name for d in repo.packages} | {p for d in repo.packages for p in d.provides}
        for deb in repo.packages:
            for dep in deb.depends:
                name, _, rest = dep.partition(" ")
                assert name in names, f"{deb.name}: {dep} missing from {repo.path}"
                if rest.startswith("(= "):
                    assert (name, rest[3:-1]) in have, f"{deb.name}: {dep}"


def test_sourced_files_exist_and_scripts_are_python_or_sh() -> None:
    for deb in _all_debs().values():
        for f in deb.files:  # type: ignore[attr-defined]
            if f.source and not f.source.startswith("@"):
                assert (FILES / f.source).is_file(), f.source
    for path in FILES.iterdir():
        if path.suffix in ("", ".py") and path.read_text().startswith("#!/usr/bin/python3"):
            compile(path.read_text(), str(path), "exec")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("gpg") is None, reason="needs dpkg-deb, gpg")
def test_repositories_build_signed_and_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = Path(tempfile.mkdtemp(prefix="g5", dir="/tmp"))  # gpg-agent's socket path must be short
    monkeypatch.setenv("XDG_CACHE_HOME", str(short))
    from glm5cluster.lab.mirror.aptrepo import write_all
    from glm5cluster.lab.mirror.gpg import lab_key

    key = lab_key()
    write_all(tmp_path / "apt", repos(), key)
    flat = tmp_path / "apt/cuda/repos/debian12/x86_64"
    packages = (flat / "Packages").read_text()
    assert "Package: nvidia-dkms-580-open\nVersion: 580.95.05-1" in packages
    assert "Filename: ./cuda-keyring_1.1-1_all.deb" in packages
    assert (flat / "InRelease").read_text().startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes((tmp_path / "apt/keys/glm5lab-archive-keyring.gpg").read_bytes())
    res = subprocess.run(["gpgv", "--keyring", str(keyring), str(flat / "InRelease")], capture_output=True)
    assert res.returncode == 0, res.stderr
    subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"], check=False)
    shutil.rmtree(short, ignore_errors=True)
    dists = tmp_path / "apt/rocm/apt/7.2/dists/jammy"
    assert "main/binary-amd64/Packages" in (dists / "Release").read_text()
    deb = next(flat.glob("nvidia-fabricmanager-580_580.95.05-1_amd64.deb"))
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "-rwxr-xr-x root/root" in next(ln for ln in listing.splitlines() if "nv-fabricmanager" in ln)
    info = subprocess.run(["dpkg-deb", "-I", str(next(flat.glob("nvidia-dkms-580-open_580.95.05*.deb")))],
                          capture_output=True, text=True, check=True).stdout
    assert "postinst" in info and "Conflicts: nvidia-dkms-580" in info
    script = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(next(flat.glob("nvidia-dkms-580-open_580.95.05*")))],
                            capture_output=True, check=True).stdout
    assert b"glm5lab-set-driver 580.95.05" in script


def _gpus_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: str | None, loaded: str | None):
    cfg = tmp_path / "gpu.json"
    cfg.write_text(json.dumps({"kind": "H200", "count": 8, "driver_version": driver}))
    run = tmp_path / "run"
    run.mkdir()
    if loaded:
        (run / "loaded-driver").write_text(loaded + "\n")
    monkeypatch.setenv("GLM5LAB_GPU_CONFIG", str(cfg))
    monkeypatch.setenv("GLM5LAB_RUN_DIR", str(run))
    spec = importlib.util.spec_from_file_location("glm5lab_gpus_t", FILES / "glm5lab_gpus.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_driver_errors_are_the_real_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = _gpus_module(tmp_path, monkeypatch, "580.105.08", "580.95.05")
    assert "driver/library version mismatch" in g.driver_error()
    assert g.select("all", 8) == list(range(8))
    assert g.select("0,3", 8) == [0, 3]
    assert g.select("nvidia.com/gpu=all", 2) == [0, 1]
    with pytest.raises(ValueError, match="9: unknown device"):
        g.select("9", 8)


def test_daemon_json_edit_keeps_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = _gpus_module(tmp_path, monkeypatch, "580.95.05", "580.95.05")
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"insecure-registries": ["172.28.77.2:5000"]}))
    g.edit_daemon_json(path, "nvidia", "nvidia-container-runtime")
    cfg = json.loads(path.read_text())
    assert cfg["insecure-registries"] == ["172.28.77.2:5000"]
    assert cfg["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}


def test_inject_copies_tools_and_state_into_a_container_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = _gpus_module(tmp_path, monkeypatch, "580.95.05", "580.95.05")
    opt = tmp_path / "opt"
    (opt / "bin").mkdir(parents=True)
    (opt / "bin/gpusim").write_text("#!/bin/sh\n")
    monkeypatch.setattr(g, "OPT", opt)
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr/bin").mkdir(parents=True)
    g.inject(rootfs, g.NVIDIA_TOOLS, [0, 1])
    assert (rootfs / "opt/glm5lab/bin/gpusim").exists()
    assert json.loads((rootfs / "etc/glm5lab/gpu.json").read_text())["count"] == 2
    assert (rootfs / "run/glm5lab/loaded-driver").read_text().strip() == "580.95.05"
    assert str((rootfs / "usr/bin/nvidia-smi").readlink()) == "/opt/glm5lab/bin/nvidia-smi"
    (rootfs / "etc").rename(tmp_path / "etc-real")
    (rootfs / "etc").symlink_to(tmp_path)  # an image whose /etc escapes its root
    with pytest.raises(ValueError, match="leaves the container root"):
        g.inject(rootfs, g.NVIDIA_TOOLS, [0])


def test_runtime_adds_the_prestart_hook_once(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec = {"process": {"env": ["PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=all"]}, "root": {"path": "rootfs"}}
    (bundle / "config.json").write_text(json.dumps(spec))
    fake_runc = tmp_path / "runc"
    fake_runc.write_text("#!/bin/sh\necho runc \"$@\"\n")
    fake_runc.chmod(0o755)
    src = (FILES / "nvidia-container-runtime").read_text().replace("@TOOLKIT@", "1.17.8")
    src = src.replace("runc = _find_runc()", f"runc = {str(fake_runc)!r}")
    script = tmp_path / "nvidia-container-runtime"
    script.write_text(src)
    for _ in range(2):
        out = subprocess.run([sys.executable, str(script), "--root", "/x", "create", "--bundle", str(bundle), "id1"],
                             capture_output=True, text=True, check=True).stdout
        assert out.startswith("runc --root /x create --bundle")
    hooks = json.loads((bundle / "config.json").read_text())["hooks"]["prestart"]
    assert [h["args"] for h in hooks] == [["nvidia-container-runtime-hook", "prestart"]]
