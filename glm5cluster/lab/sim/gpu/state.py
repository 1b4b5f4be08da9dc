"""The simulated host's GPU state: its configuration, the driver installed and the one loaded.

* ``/etc/glm5lab/gpu.json`` (``GLM5LAB_GPU_CONFIG``): what the host *has*: GPU kind and count,
  the installed driver version (``null``: none installed), CUDA/ROCm version, persistence and
  health counters. Stand-in driver packages change ``driver_version`` (``glm5lab-set-driver``).
  ``compute_apps`` lists processes that hold GPUs (a busy GPU), shown while their pid lives.
* ``/run/glm5lab/loaded-driver`` (``GLM5LAB_RUN_DIR``): what the running "kernel" has loaded.
  Written at boot by ``glm5lab-boot`` from the installed version. ``/run`` is a tmpfs, so a
  reboot (a container restart) forgets it: installing another driver without a reboot gives
  the "Driver/library version mismatch" state, as on a real server.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
NVIDIA_TOOLS = ("nvidia-smi",)
AMD_TOOLS = ("amd-smi", "rocm-smi", "rocminfo")


@dataclass(frozen=True)
class Kind:
    vendor: str
    name: str
    memory_mib: int
    power_cap_w: int
    compute_cap: str
    architecture: str
    device_id: str = ""  # AMD PCI device id
    gfx: str = ""


KINDS = {
    "H100": Kind("nvidia", "NVIDIA H100 80GB HBM3", 81559, 700, "9.0", "Hopper"),
    "H200": Kind("nvidia", "NVIDIA H200", 143771, 700, "9.0", "Hopper"),
    "B200": Kind("nvidia", "NVIDIA B200", 183359, 1000, "10.0", "Blackwell"),
    "MI300X": Kind("amd", "AMD Instinct MI300X", 196592, 750, "9.4", "CDNA3", "0x74a1", "gfx942"),
    "MI325X": Kind("amd", "AMD Instinct MI325X", 262128, 1000, "9.4", "CDNA3", "0x74a5", "gfx942"),
    "MI355X": Kind("amd", "AMD Instinct MI355X", 294896, 1400, "9.5", "CDNA4", "0x75a3", "gfx950"),
}
# PCI bus numbers of an 8-GPU HGX board (from the h200-x8 fixture), extended for more GPUs.
BUSES = ["0A", "18", "3B", "44", "87", "90", "B9", "C2", "CA", "D1", "D8", "DF", "E6", "ED", "F4", "FB"]


@dataclass(frozen=True)
class Config:
    kind: str
    count: int
    driver_version: str | None
    cuda_version: str
    rocm_version: str
    persistence_mode: bool
    ecc_uncorrected: int
    remapped_pending: bool
    remapped_failure: bool
    remapped_uncorrectable: int
    seed: str
    # processes holding GPUs (what `nvidia-smi --query-compute-apps` lists), each
    # {"pid": N, "name": "...", "used_mib": M, "gpu": I}; listed only while the pid lives
    compute_apps: tuple[dict[str, object], ...] = ()

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]

    def uuid(self, i: int) -> str:
        h = hashlib.sha256(f"{self.seed}/{self.kind}/{i}".encode()).hexdigest()
        if self.spec.vendor == "amd":
            return f"{h[:4]}74a1-0000-1000-80{h[4:6]}-{h[6:18]}"
        return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def serial(self, i: int) -> str:
        return str(int(hashlib.sha256(f"{self.seed}/serial/{i}".encode()).hexdigest()[:10], 16))[:13]

    def bus(self, i: int) -> str:
        return BUSES[i % len(BUSES)]


def config_path() -> Path:
    return Path(os.environ.get("GLM5LAB_GPU_CONFIG", "/etc/glm5lab/gpu.json"))


def run_dir() -> Path:
    return Path(os.environ.get("GLM5LAB_RUN_DIR", "/run/glm5lab"))


def load_config() -> Config:
    raw = json.loads(config_path().read_text())
    kind = str(raw.get("kind", "H200")).upper()
    if kind not in KINDS:
        raise SystemExit(f"glm5lab: unknown GPU kind {kind!r} in {config_path()}")
    return Config(
        kind=kind,
        count=int(raw.get("count", 8)),
        driver_version=raw.get("driver_version") or None,
        cuda_version=str(raw.get("cuda_version", "13.0")),
        rocm_version=str(raw.get("rocm_version", "6.4.1")),
        persistence_mode=bool(raw.get("persistence_mode", True)),
        ecc_uncorrected=int(raw.get("ecc_uncorrected", 0)),
        remapped_pending=bool(raw.get("remapped_pending", False)),
        remapped_failure=bool(raw.get("remapped_failure", False)),
        remapped_uncorrectable=int(raw.get("remapped_uncorrectable", 0)),
        seed=str(raw.get("seed", "glm5lab")),
        compute_apps=tuple(a for a in raw.get("compute_apps") or () if isinstance(a, dict)),
    )


def loaded_driver() -> str | None:
    try:
        return (run_dir() / "loaded-driver").read_text().strip() or None
    except OSError:
        return None


def _sync_tools(cfg: Config) -> None:
    """Install the vendor's tools in the bin dir when a driver is installed; remove them if not."""
    bin_dir = Path(os.environ.get("GLM5LAB_BIN_DIR", "/usr/bin"))
    tools_dir = Path(os.environ.get("GLM5LAB_TOOLS_DIR", "/opt/glm5lab/bin"))
    wanted = set()
    if cfg.driver_version:
        wanted = set(NVIDIA_TOOLS if cfg.spec.vendor == "nvidia" else AMD_TOOLS)
    for tool in NVIDIA_TOOLS + AMD_TOOLS:
        link = bin_dir / tool
        if tool in wanted:
            if not link.is_symlink():
                if link.exists():
                    link.unlink()
                link.symlink_to(tools_dir / tool)
        elif link.is_symlink() and str(os.readlink(link)).startswith(str(tools_dir)):
            link.unlink()


def boot(args: list[str]) -> int:
    """At boot: the installed driver (if any) is loaded; the tools match what is installed."""
    cfg = load_config()
    rd = run_dir()
    rd.mkdir(parents=True, exist_ok=True)
    loaded = rd / "loaded-driver"
    if cfg.driver_version:
        loaded.write_text(cfg.driver_version + "\n")
    elif loaded.exists():
        loaded.unlink()
    (rd / "booted").write_text(f"{time.time():.3f}\n")
    _sync_tools(cfg)
    print(f"glm5lab: {cfg.count}x {cfg.kind}, driver loaded: {cfg.driver_version or 'none'}")
    return 0


def set_driver_main(args: list[str]) -> int:
    """``glm5lab-set-driver VERSION|none [--load]``: what a driver package's scripts call."""
    if not args or args[0] in ("-h", "--help"):
        print("usage: glm5lab-set-driver VERSION|none [--load]", file=sys.stderr)
        return 2
    path = config_path()
    raw = json.loads(path.read_text())
    raw["driver_version"] = None if args[0] == "none" else args[0]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(raw, indent=1) + "\n")
    tmp.replace(path)
    cfg = load_config()
    _sync_tools(cfg)
    if "--load" in args[1:]:  # e.g. a first install on a host that had no driver module loaded
        run_dir().mkdir(parents=True, exist_ok=True)
        if cfg.driver_version:
            (run_dir() / "loaded-driver").write_text(cfg.driver_version + "\n")
    return 0
