"""glm5lab container-toolkit stand-ins, shared part: the host's simulated GPUs (the lab's
/etc/glm5lab/gpu.json and /run/glm5lab/loaded-driver) and their injection into a container."""
import json
import os
import shutil
from pathlib import Path

CONFIG = Path(os.environ.get("GLM5LAB_GPU_CONFIG", "/etc/glm5lab/gpu.json"))
RUN = Path(os.environ.get("GLM5LAB_RUN_DIR", "/run/glm5lab"))
OPT = Path("/opt/glm5lab")
NVIDIA_TOOLS = ("nvidia-smi",)
AMD_TOOLS = ("amd-smi", "rocm-smi", "rocminfo")
NO_LIB = ("nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: "
          "cannot open shared object file: no such file or directory: unknown")
MISMATCH = "nvidia-container-cli: initialization error: nvml error: driver/library version mismatch: unknown"


def config():
    try:
        return json.loads(CONFIG.read_text())
    except (OSError, ValueError):
        return {}


def installed():
    return config().get("driver_version") or None


def loaded():
    try:
        return (RUN / "loaded-driver").read_text().strip() or None
    except OSError:
        return None


def driver_error(vendor="nvidia"):
    """The error the real tools give for the host's driver state, or None when it works."""
    inst, ld = installed(), loaded()
    if vendor == "amd":
        if not inst or not ld:
            return "amd-container-runtime: amdgpu driver is not loaded (no /dev/kfd)"
        return None
    if not inst or not ld:
        return NO_LIB
    if inst != ld:
        return MISMATCH
    return None


def select(devices, count, prefix="nvidia-container-cli: device error"):
    """GPU indices for a NVIDIA_VISIBLE_DEVICES / AMD_VISIBLE_DEVICES value; raises ValueError."""
    out = []
    for item in devices.split(","):
        item = item.strip().split("=", 1)[-1]  # CDI names: nvidia.com/gpu=0
        if item in ("all", ""):
            return list(range(count))
        if item.isdigit() and int(item) < count:
            out.append(int(item))
        else:
            raise ValueError(f"{prefix}: {item}: unknown device: unknown")
    return out


def bundle_spec(bundle):
    """(spec, rootfs) of an OCI bundle."""
    spec = json.loads((Path(bundle) / "config.json").read_text())
    root = Path(spec.get("root", {}).get("path", "rootfs"))
    return spec, root if root.is_absolute() else Path(bundle) / root


def spec_env(spec):
    return dict(e.split("=", 1) for e in spec.get("process", {}).get("env", []) if "=" in e)


def _inside(rootfs, rel):
    """rootfs/rel, refusing a path whose parent resolves outside rootfs (image symlinks)."""
    path = rootfs / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not str(path.parent.resolve()).startswith(str(rootfs.resolve())):
        raise ValueError(f"refusing to write {rel}: it leaves the container root")
    return path


def inject(rootfs, tools, indices):
    """Put the simulated tools, the GPU config (only the selected GPUs) and the loaded-driver
    state into a container root, as nvidia-container-cli mounts the host's driver files."""
    rootfs = Path(rootfs)
    dest = _inside(rootfs, "/opt/glm5lab/bin/x").parent.parent
    shutil.copytree(OPT, dest, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    cfg = config()
    cfg["count"] = len(indices)
    _inside(rootfs, "/etc/glm5lab/gpu.json").write_text(json.dumps(cfg) + "\n")
    if loaded():
        _inside(rootfs, "/run/glm5lab/loaded-driver").write_text(loaded() + "\n")
    for tool in tools:
        link = _inside(rootfs, f"/usr/bin/{tool}")
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f"/opt/glm5lab/bin/{tool}")


def edit_daemon_json(path, runtime, binary, set_default=False, cdi=False):
    """Add ``runtime`` to Docker's daemon.json as the real ``*-ctk runtime configure`` does."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        cfg = {}
    cfg.setdefault("runtimes", {})[runtime] = {"args": [], "path": binary}
    if set_default:
        cfg["default-runtime"] = runtime
    if cdi:
        cfg.setdefault("features", {})["cdi"] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=4) + "\n")
    tmp.replace(path)


def find_runc():
    for p in ("/usr/bin/runc", "/usr/sbin/runc", "/usr/local/bin/runc", "/usr/local/sbin/runc"):
        if os.access(p, os.X_OK):
            return p
    return shutil.which("runc") or "runc"
