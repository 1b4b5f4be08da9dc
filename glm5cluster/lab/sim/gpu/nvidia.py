"""``nvidia-smi``: the queries the toolkit makes, in the formats of the captured outputs.

Formats follow ``data/nvidia-smi_h200x2.txt`` (driver 580) and ``data/nvidia-smi_h200x8_570.txt``
(driver 570: ``|---`` header rule, blank line of spaces before the processes table).
"""

from __future__ import annotations

import os
import re
import sys
import time

from .state import DATA, Config, load_config, loaded_driver

NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)
RESERVED_MIB = 615  # total - free on an idle GPU (h200x2 query fixture)
POWER = [107, 96, 120, 122, 113, 120, 118, 121, 117, 120]
TEMP = [38, 40, 32, 29, 27, 32, 32, 29, 28, 33]


def _major(v: str) -> int:
    try:
        return int(v.split(".")[0])
    except ValueError:
        return 0


def _bus_id(cfg: Config, i: int) -> str:
    return f"00000000:{cfg.bus(i)}:00.0"


def table(cfg: Config, drv: str) -> str:
    new = _major(drv) >= 580
    rule = "+-----------------------------------------+------------------------+----------------------+"
    pm = "On" if cfg.persistence_mode else "Off"
    out = [time.strftime("%a %b %e %H:%M:%S %Y") + "       ", "+" + "-" * 89 + "+"]
    out.append(f"| NVIDIA-SMI {drv:<23}Driver Version: {drv:<15}CUDA Version: {cfg.cuda_version:<9}|")
    out.append(rule if new else "|" + rule[1:])
    out += [
        "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
        "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
        "|                                         |                        |               MIG M. |",
        "|=========================================+========================+======================|",
    ]
    spec = cfg.spec
    for i in range(cfg.count):
        ecc = str(cfg.ecc_uncorrected)
        out.append(f"| {i:>3}  {spec.name:<31}{pm:<3} |{_bus_id(cfg, i):>19} Off |{ecc:>21} |")
        pw, tc = POWER[i % len(POWER)], TEMP[i % len(TEMP)]
        out.append(
            f"| N/A {tc:>4}C {'P0':>5} {pw:>14}W / {spec.power_cap_w:>4}W |"
            f"{0:>8}MiB / {spec.memory_mib:>6}MiB |{0:>7}%{'Default':>13} |"
        )
        out.append(f"|{'':41}|{'':24}|{'Disabled':>21} |")
        out.append(rule)
    out.append("" if new else " " * 89)
    out += [
        "+" + "-" * 89 + "+",
        "| Processes:                                                                              |",
        "|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |",
        "|        ID   ID                                                               Usage      |",
        "|" + "=" * 89 + "|",
        "|  No running processes found                                                             |",
        "+" + "-" * 89 + "+",
    ]
    return "\n".join(out) + "\n"


def listing(cfg: Config) -> str:
    return "".join(f"GPU {i}: {cfg.spec.name} (UUID: {cfg.uuid(i)})\n" for i in range(cfg.count))


# field -> (header unit, value function(cfg, i, drv)); unit None = no unit
FIELDS = {
    "index": (None, lambda c, i, d: str(i)),
    "count": (None, lambda c, i, d: str(c.count)),
    "name": (None, lambda c, i, d: c.spec.name),
    "uuid": (None, lambda c, i, d: c.uuid(i)),
    "serial": (None, lambda c, i, d: c.serial(i)),
    "pci.bus_id": (None, lambda c, i, d: _bus_id(c, i)),
    "driver_version": (None, lambda c, i, d: d),
    "vbios_version": (None, lambda c, i, d: "96.00.A5.00.1A"),
    "memory.total": ("MiB", lambda c, i, d: str(c.spec.memory_mib)),
    "memory.used": ("MiB", lambda c, i, d: "0"),
    "memory.free": ("MiB", lambda c, i, d: str(c.spec.memory_mib - RESERVED_MIB)),
    "memory.reserved": ("MiB", lambda c, i, d: str(RESERVED_MIB)),
    "utilization.gpu": ("%", lambda c, i, d: "0"),
    "utilization.memory": ("%", lambda c, i, d: "0"),
    "temperature.gpu": (None, lambda c, i, d: str(TEMP[i % len(TEMP)])),
    "power.draw": ("W", lambda c, i, d: f"{POWER[i % len(POWER)] - 14.33:.2f}"),
    "power.limit": ("W", lambda c, i, d: f"{c.spec.power_cap_w:.2f}"),
    "compute_cap": (None, lambda c, i, d: c.spec.compute_cap),
    "persistence_mode": (None, lambda c, i, d: "Enabled" if c.persistence_mode else "Disabled"),
    "ecc.mode.current": (None, lambda c, i, d: "Enabled"),
    "ecc.mode.pending": (None, lambda c, i, d: "Enabled"),
    "ecc.errors.uncorrected.volatile.total": (None, lambda c, i, d: str(c.ecc_uncorrected)),
    "ecc.errors.uncorrected.aggregate.total": (None, lambda c, i, d: str(c.ecc_uncorrected)),
    "ecc.errors.corrected.volatile.total": (None, lambda c, i, d: "0"),
    "remapped_rows.pending": (None, lambda c, i, d: "Yes" if c.remapped_pending else "No"),
    "remapped_rows.failure": (None, lambda c, i, d: "Yes" if c.remapped_failure else "No"),
    "remapped_rows.uncorrectable": (None, lambda c, i, d: str(c.remapped_uncorrectable)),
    "remapped_rows.correctable": (None, lambda c, i, d: "0"),
    "mig.mode.current": (None, lambda c, i, d: "Disabled"),
    "pstate": (None, lambda c, i, d: "P0"),
}
ALIASES = {"gpu_name": "name", "gpu_uuid": "uuid", "gpu_bus_id": "pci.bus_id", "pci.bus": "pci.bus_id"}


def query(cfg: Config, drv: str, fields: list[str], fmt: set[str]) -> tuple[int, str]:
    for f in fields:
        if ALIASES.get(f, f) not in FIELDS:
            return 2, f'Field "{f}" is not a valid field to query.\n\n'
    nounits = "nounits" in fmt
    rows = []
    if "noheader" not in fmt:
        rows.append(", ".join(f"{f} [{FIELDS[ALIASES.get(f, f)][0]}]" if FIELDS[ALIASES.get(f, f)][0] else f for f in fields))
    for i in range(cfg.count):
        vals = []
        for f in fields:
            unit, fn = FIELDS[ALIASES.get(f, f)]
            v = fn(cfg, i, drv)
            vals.append(v if nounits or unit is None else f"{v} {unit}")
        rows.append(", ".join(vals))
    return 0, "\n".join(rows) + "\n"


# --query-compute-apps: field -> (header name, unit, value function(cfg, app))
APP_FIELDS = {
    "pid": ("pid", None, lambda c, a: str(a.get("pid", ""))),
    "process_name": ("process_name", None, lambda c, a: str(a.get("name", "python3"))),
    "used_gpu_memory": ("used_gpu_memory", "MiB", lambda c, a: str(a.get("used_mib", 0))),
    "used_memory": ("used_gpu_memory", "MiB", lambda c, a: str(a.get("used_mib", 0))),
    "gpu_uuid": ("gpu_uuid", None, lambda c, a: c.uuid(_app_gpu(c, a))),
    "gpu_bus_id": ("gpu_bus_id", None, lambda c, a: _bus_id(c, _app_gpu(c, a))),
    "gpu_name": ("gpu_name", None, lambda c, a: c.spec.name),
}


def _app_gpu(cfg: Config, app: dict[str, object]) -> int:
    g = app.get("gpu", 0)
    return g % cfg.count if isinstance(g, int) and cfg.count else 0


def live_apps(cfg: Config) -> list[dict[str, object]]:
    """The configured compute processes whose pid still lives (a process that exited frees its GPU)."""
    return [a for a in cfg.compute_apps if str(a.get("pid", "")).isdigit() and os.path.exists(f"/proc/{a['pid']}")]


def query_apps(cfg: Config, fields: list[str], fmt: set[str]) -> tuple[int, str]:
    """One row per process per GPU; nothing at all (with noheader) on idle GPUs, as the real tool."""
    for f in fields:
        if f not in APP_FIELDS:
            return 2, f'Field "{f}" is not a valid field to query.\n\n'
    rows = []
    if "noheader" not in fmt:
        rows.append(", ".join(f"{APP_FIELDS[f][0]} [{APP_FIELDS[f][1]}]" if APP_FIELDS[f][1] else APP_FIELDS[f][0]
                              for f in fields))
    for app in live_apps(cfg):
        vals = []
        for f in fields:
            _, unit, fn = APP_FIELDS[f]
            v = fn(cfg, app)
            vals.append(v if "nounits" in fmt or unit is None else f"{v} {unit}")
        rows.append(", ".join(vals))
    return 0, "".join(r + "\n" for r in rows)


def query_details(cfg: Config, drv: str) -> str:
    """``-q``: the captured report of the kind (H100, else H200), scaled to the host."""
    src = "nvidia-smi-q_h100x8.txt" if cfg.kind == "H100" else "nvidia-smi-q_h200x2.txt"
    text = (DATA / src).read_text()
    head, _, rest = text.partition("\nGPU 0000")
    block = "GPU 0000" + rest.split("\nGPU 0000")[0].rstrip("\n") + "\n"
    old_drv = re.search(r"Driver Version\s+: (\S+)", head).group(1)  # type: ignore[union-attr]
    old_bus = block.split()[1]
    old_uuid = re.search(r"GPU UUID\s+: (\S+)", block).group(1)  # type: ignore[union-attr]
    head = head.replace(old_drv, drv)
    head = re.sub(r"(CUDA Version\s+: )\S+", lambda m: m.group(1) + cfg.cuda_version, head)
    head = re.sub(r"(Attached GPUs\s+: )\d+", lambda m: m.group(1) + str(cfg.count), head)
    head = re.sub(r"(Timestamp\s+: ).*", lambda m: m.group(1) + time.strftime("%a %b %e %H:%M:%S %Y"), head)
    out = [head.rstrip("\n")]
    for i in range(cfg.count):
        b = block.replace(old_bus, _bus_id(cfg, i)).replace(old_uuid, cfg.uuid(i)).replace(old_drv, drv)
        b = re.sub(r"(Minor Number\s+: )\d+", lambda m, i=i: m.group(1) + str(i), b)
        b = re.sub(r"(Serial Number\s+: )\d+", lambda m, i=i: m.group(1) + cfg.serial(i), b)
        b = re.sub(r"(Product Name\s+: ).*", lambda m: m.group(1) + cfg.spec.name, b)
        b = re.sub(r"(Product Architecture\s+: ).*", lambda m: m.group(1) + cfg.spec.architecture, b)
        b = re.sub(r"(Persistence Mode\s+: )\S+", lambda m: m.group(1) + ("Enabled" if cfg.persistence_mode else "Disabled"), b)
        b = re.sub(r"(\n        Pending\s+: )(No|Yes)", lambda m: m.group(1) + ("Yes" if cfg.remapped_pending else "No"), b)
        b = re.sub(r"(Remapping Failure Occurred\s+: )\S+", lambda m: m.group(1) + ("Yes" if cfg.remapped_failure else "No"), b)
        b = re.sub(r"(Volatile\n(?:.*\n)*?\s+DRAM Uncorrectable\s+: )\d+", lambda m: m.group(1) + str(cfg.ecc_uncorrected), b, count=1)
        out.append(b.rstrip("\n"))
    return "\n".join(out) + "\n\n"


def version(drv: str, cfg: Config) -> str:
    nvml = ".".join(drv.split(".")[:2])
    return (
        f"NVIDIA-SMI version  : {drv}\nNVML version        : {nvml}\n"
        f"DRIVER version      : {drv}\nCUDA Version        : {cfg.cuda_version}\n"
    )


def main(args: list[str]) -> int:
    cfg = load_config()
    installed = cfg.driver_version
    loaded = loaded_driver()
    if installed is None or loaded is None:
        sys.stdout.write(NO_DRIVER)
        return 9
    if loaded != installed:
        sys.stdout.write(
            "Failed to initialize NVML: Driver/library version mismatch\n"
            f"NVML library version: {'.'.join(installed.split('.')[:2])}\n"
        )
        return 18
    drv = installed
    fields: list[str] = []
    fmt: set[str] = set()
    it = iter(args)
    mode = "table"
    for a in it:
        if a.startswith("--query-compute-apps="):
            fields, mode = [f.strip() for f in a.split("=", 1)[1].split(",") if f.strip()], "apps"
        elif a.startswith("--query-gpu="):
            fields, mode = [f.strip() for f in a.split("=", 1)[1].split(",") if f.strip()], "query"
        elif a == "--query-gpu":
            fields, mode = [f.strip() for f in next(it, "").split(",") if f.strip()], "query"
        elif a.startswith("--format="):
            fmt = {x.strip() for x in a.split("=", 1)[1].split(",")}
        elif a == "--format":
            fmt = {x.strip() for x in next(it, "").split(",")}
        elif a in ("-L", "--list-gpus"):
            mode = "list"
        elif a in ("-q", "--query", "-a"):
            mode = "details"
        elif a in ("--version",):
            mode = "version"
        elif a in ("-i", "--id"):
            next(it, None)  # every simulated GPU answers alike; keep it simple
        elif a in ("-h", "--help"):
            sys.stdout.write("NVIDIA System Management Interface -- v" + drv + " (glm5lab simulator)\n")
            return 0
        else:
            sys.stdout.write("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n")
            return 2
    if mode in ("query", "apps"):
        if "csv" not in fmt:
            sys.stdout.write("'--format=' switch is missing. Please run 'nvidia-smi -h' for help.\n")
            return 2
        rc, text = query(cfg, drv, fields, fmt) if mode == "query" else query_apps(cfg, fields, fmt)
        sys.stdout.write(text)
        return rc
    sys.stdout.write({"table": table, "details": query_details}[mode](cfg, drv) if mode in ("table", "details")
                     else listing(cfg) if mode == "list" else version(drv, cfg))
    return 0
