"""``amd-smi`` (version, list, static), ``rocm-smi`` (concise table) and ``rocminfo``.

Each is the captured output of ``data/`` with its per-GPU part repeated for the host's GPU
count and the names, ids and versions of the configured kind substituted.
"""

from __future__ import annotations

import re
import sys

from .state import DATA, Config, load_config, loaded_driver

NO_DRIVER_AMD = "ERROR:root:Driver not initialized (amdgpu not found in modules)\n"
NO_DRIVER_ROCM = (
    "\n\n======================================== ROCm System Management Interface ========================================\n"
    "ERROR:root:Driver not initialized (amdgpu not found in modules)\n"
)


def _bdf(cfg: Config, i: int) -> str:
    return f"0000:{cfg.bus(i).lower()}:00.0"


def amd_version(cfg: Config, drv: str) -> str:
    line = (DATA / "amd-smi-version_25.4.2.txt").read_text()
    line = re.sub(r"ROCm version: \S+", f"ROCm version: {cfg.rocm_version}", line)
    return re.sub(r"amdgpu version: \S+", f"amdgpu version: {drv}", line)


def amd_list(cfg: Config) -> str:
    blocks = [f"GPU: {i}\n    BDF: {_bdf(cfg, i)}\n    UUID: {cfg.uuid(i)}\n" for i in range(cfg.count)]
    return "\n".join(blocks)


def amd_static(cfg: Config, drv: str) -> str:
    text = (DATA / "amd-smi-static_mi300a4.txt").read_text()
    first = text.index("GPU: 0")
    block = text[first:].split("\n\nGPU: 1")[0].rstrip("\n") + "\n"
    name = cfg.spec.name.replace("AMD Instinct ", "")
    out = []
    for i in range(cfg.count):
        b = block.replace("GPU: 0", f"GPU: {i}", 1)
        b = re.sub(r"MARKET_NAME: .*", f"MARKET_NAME: {name}", b)
        b = re.sub(r"DEVICE_ID: \S+", f"DEVICE_ID: {cfg.spec.device_id}", b, count=1)
        b = re.sub(r"BDF: \S+", f"BDF: {_bdf(cfg, i)}", b)
        b = re.sub(r"OAM_ID: \d+", f"OAM_ID: {i}", b)
        b = re.sub(r"(DRIVER:\n\s+NAME: amdgpu\n\s+VERSION: )\S+", lambda m: m.group(1) + drv, b)
        b = re.sub(r"(VRAM:\n(?:.*\n)*?\s+SIZE: )\d+ MB", lambda m: m.group(1) + f"{cfg.spec.memory_mib} MB", b, count=1)
        out.append(b)
    return "\n".join(out)


def rocm_smi(cfg: Config) -> str:
    lines = (DATA / "rocm-smi_mi300x4.txt").read_text().split("\n")
    head, rows, foot = lines[:5], lines[5:7], lines[13:]
    out = list(head)
    for i in range(cfg.count):
        r0 = f"{i:<8}" + rows[0][8:].replace("0x74a1", cfg.spec.device_id)
        r1 = rows[1].replace("AMD Instinct MI300X", f"{cfg.spec.name:<19}"[:19])
        out += [r0, r1]
    return "\n".join(out + foot)


def rocminfo(cfg: Config) -> str:
    text = (DATA / "rocminfo_mi300x4.txt").read_text()
    parts = re.split(r"(?m)^\*\*\*\*\*\*\*\s*\nAgent (\d+)\s*\n\*\*\*\*\*\*\*\s*\n", text)
    head, agents = parts[0], [(int(parts[k]), parts[k + 1]) for k in range(1, len(parts), 2)]
    cpus = [body for _, body in agents if "Device Type:             CPU" in body]
    gpu = next(body for _, body in agents if "Device Type:             GPU" in body)
    tail = ""
    if "*** Done ***" in gpu:
        gpu, _, tail = gpu.partition("*** Done ***")
        tail = "*** Done ***" + tail
    out = [head]
    n = 0
    for body in cpus + [gpu] * cfg.count:
        n += 1
        if body is gpu:
            body = body.replace("gfx942", cfg.spec.gfx).replace("AMD Instinct MI300X", cfg.spec.name)
            body = re.sub(r"(  Node:\s+)\d+", lambda m, n=n: m.group(1) + str(n - 1), body, count=1)
        out.append(f"*******                  \nAgent {n}                  \n*******                  \n{body}")
    if not tail:
        tail = "*** Done ***             \n"
    return "".join(out).rstrip("\n") + "\n" + tail


def main(tool: str, args: list[str]) -> int:
    cfg = load_config()
    installed, loaded = cfg.driver_version, loaded_driver()
    if installed is None or loaded is None:
        sys.stdout.write(NO_DRIVER_ROCM if tool == "rocm-smi" else NO_DRIVER_AMD)
        return 1
    drv = installed
    if tool == "rocminfo":
        sys.stdout.write(rocminfo(cfg))
        return 0
    if tool == "rocm-smi":
        if args and args[0] not in ("--showuse", "-a"):  # only the concise table is simulated
            sys.stdout.write(rocm_smi(cfg))
            return 0
        sys.stdout.write(rocm_smi(cfg))
        return 0
    sub = args[0] if args else "help"
    if sub == "version":
        sys.stdout.write(amd_version(cfg, drv))
    elif sub == "list":
        sys.stdout.write(amd_list(cfg))
    elif sub == "static":
        sys.stdout.write(amd_static(cfg, drv))
    else:
        sys.stdout.write("usage: amd-smi [version|list|static] (glm5lab simulator)\n")
        return 2 if sub != "help" else 0
    return 0
