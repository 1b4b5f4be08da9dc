"""The GPU tool simulators' output formats, against the captured outputs they are built from
(glm5cluster/lab/sim/gpu/data; its SOURCES.md names the public source of each)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / "glm5cluster" / "lab" / "sim" / "gpu" / "data"


class Host:
    def __init__(self, tmp: Path, **cfg: object) -> None:
        self.tmp = tmp
        self.cfg = tmp / "gpu.json"
        (tmp / "bin").mkdir(exist_ok=True)
        self.cfg.write_text(json.dumps({"kind": "H200", "count": 8, "driver_version": "580.159.04", **cfg}))
        self.env = {"GLM5LAB_GPU_CONFIG": str(self.cfg), "GLM5LAB_RUN_DIR": str(tmp / "run"),
                    "GLM5LAB_BIN_DIR": str(tmp / "bin"), "GLM5LAB_TOOLS_DIR": "/opt/glm5lab/bin", "PATH": "/usr/bin:/bin"}

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "glm5cluster.lab.sim.gpu", tool, *args],
                              capture_output=True, text=True, env=self.env, check=False,
                              cwd=Path(__file__).resolve().parents[3])

    def boot(self) -> None:
        assert self.run("glm5lab-boot").returncode == 0


def shape(text: str) -> list[tuple[int, list[int], str]]:
    """A table with its values masked: line widths, column rules and words must match exactly."""
    out = []
    for ln in text.splitlines():
        masked = re.sub(r"[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.\d", "BUS", ln)
        out.append((len(ln), [i for i, ch in enumerate(ln) if ch == "|"], re.sub(r"[ \d.]*\d", "#", masked)))
    return out


@pytest.fixture
def h200(tmp_path: Path) -> Host:
    h = Host(tmp_path, count=2, cuda_version="13.0")
    h.boot()
    return h


def test_table_has_the_layout_of_the_580_capture(h200: Host) -> None:
    out = h200.run("nvidia-smi")
    assert out.returncode == 0
    real = (DATA / "nvidia-smi_h200x2.txt").read_text().split("\n\nGPU 0:")[0]
    assert shape(out.stdout.rstrip("\n"))[1:] == shape(real.rstrip("\n"))[1:]


def test_table_has_the_layout_of_the_570_capture(tmp_path: Path) -> None:
    h = Host(tmp_path, driver_version="570.158.01", cuda_version="12.8", persistence_mode=False)
    h.boot()
    out = h.run("nvidia-smi").stdout
    real = (DATA / "nvidia-smi_h200x8_570.txt").read_text()
    assert shape(out)[1:] == shape(real)[1:]  # line 0: the timestamp


def test_h100_table_layout(tmp_path: Path) -> None:
    h = Host(tmp_path, kind="H100", driver_version="565.57.01", cuda_version="12.7")
    h.boot()
    out = h.run("nvidia-smi").stdout.splitlines()
    real = (DATA / "nvidia-smi_h100x8_565.txt").read_text().splitlines()
    # the capture has no timestamp line
    assert shape("\n".join(out[1:13])) == shape("\n".join(real[0:12]))


def test_query_formats_match_the_capture(h200: Host) -> None:
    fields = "index,name,uuid,pci.bus_id,driver_version,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,power.draw,compute_cap"
    out = h200.run("nvidia-smi", f"--query-gpu={fields}", "--format=csv").stdout.splitlines()
    real = (DATA / "query_h200x2.csv").read_text().splitlines()
    assert out[0] == real[0]
    assert len(out) == 3
    for mine, theirs in zip(out[1:], real[1:], strict=True):
        m, t = mine.split(", "), theirs.split(", ")
        assert [re.sub(r"[\da-fA-F]", "#", x) for x in m] == [re.sub(r"[\da-fA-F]", "#", x) for x in t]
    out = h200.run("nvidia-smi", "--query-gpu=index,name,driver_version,memory.total,compute_cap",
                   "--format=csv,noheader,nounits").stdout
    assert out == (DATA / "query-noheader_h200x2.csv").read_text()


def test_health_fields(tmp_path: Path) -> None:
    h = Host(tmp_path, count=2, remapped_pending=True, ecc_uncorrected=3, persistence_mode=False)
    h.boot()
    out = h.run("nvidia-smi", "--query-gpu=persistence_mode,ecc.mode.current,ecc.errors.uncorrected.volatile.total,"
                "remapped_rows.pending,remapped_rows.failure,remapped_rows.uncorrectable", "--format=csv,noheader")
    assert out.stdout.splitlines() == ["Disabled, Enabled, 3, Yes, No, 0"] * 2


def test_unknown_field(h200: Host) -> None:
    out = h200.run("nvidia-smi", "--query-gpu=cuda_version", "--format=csv")
    assert out.returncode == 2 and out.stdout.startswith('Field "cuda_version" is not a valid field to query.')


def test_list_version_and_details(h200: Host) -> None:
    lines = h200.run("nvidia-smi", "-L").stdout.splitlines()
    assert len(lines) == 2 and re.fullmatch(r"GPU 1: NVIDIA H200 \(UUID: GPU-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\)", lines[1])
    assert "DRIVER version      : 580.159.04" in h200.run("nvidia-smi", "--version").stdout
    q = h200.run("nvidia-smi", "-q").stdout
    assert q.count("\nGPU 00000000:") == 2 and "Attached GPUs                                          : 2" in q
    assert q.splitlines()[:3] == (DATA / "nvidia-smi-q_h200x2.txt").read_text().splitlines()[:3]


def test_no_driver_loaded_and_version_mismatch(tmp_path: Path) -> None:
    h = Host(tmp_path)
    out = h.run("nvidia-smi")  # installed but not booted: nothing loaded
    assert out.returncode == 9 and "couldn't communicate with the NVIDIA driver" in out.stdout
    h.boot()
    assert h.run("glm5lab-set-driver", "590.48.01").returncode == 0
    out = h.run("nvidia-smi")
    assert out.returncode == 18
    assert out.stdout == "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 590.48\n"
    h.boot()  # a reboot loads what is installed
    assert h.run("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader").stdout.split() == ["590.48.01"] * 8


def test_tools_are_installed_only_with_a_driver(tmp_path: Path) -> None:
    h = Host(tmp_path, driver_version=None)
    h.boot()
    assert not (tmp_path / "bin" / "nvidia-smi").is_symlink()
    h.run("glm5lab-set-driver", "580.159.04")
    assert (tmp_path / "bin" / "nvidia-smi").is_symlink()
    h.run("glm5lab-set-driver", "none")
    assert not (tmp_path / "bin" / "nvidia-smi").is_symlink()


def test_amd_tools(tmp_path: Path) -> None:
    h = Host(tmp_path, kind="MI300X", count=4, driver_version="6.10.5", rocm_version="6.4.1")
    h.boot()
    assert {p.name for p in (tmp_path / "bin").iterdir()} == {"amd-smi", "rocm-smi", "rocminfo"}
    assert h.run("amd-smi", "version").stdout == (DATA / "amd-smi-version_25.4.2.txt").read_text()
    assert shape(h.run("rocm-smi").stdout) == shape((DATA / "rocm-smi_mi300x4.txt").read_text())
    listing = h.run("amd-smi", "list").stdout
    assert listing.count("GPU: ") == 4 and "    BDF: 0000:0a:00.0" in listing
    static = h.run("amd-smi", "static").stdout
    assert static.count("MARKET_NAME: MI300X") == 4
    info = h.run("rocminfo").stdout
    assert info.count("Marketing Name:          AMD Instinct MI300X") == 4
    assert info.rstrip().endswith("*** Done ***")
    h8 = Host(tmp_path / "x", kind="MI355X", count=8) if (tmp_path / "x").mkdir() is None else None
    assert h8 is not None
    h8.boot()
    assert h8.run("rocminfo").stdout.count("gfx950") >= 8
    assert h8.run("rocm-smi").stdout.count("AMD Instinct MI355X") == 8


def test_compute_apps_lists_live_holders_for_the_spec_check(tmp_path: Path) -> None:
    """A busy GPU (preflight's spec check): the knob's processes are listed while they live, in
    the CSV the toolkit's parser reads; an idle GPU answers nothing, as the real tool does."""
    from glm5cluster.commands import CommandResult
    from glm5cluster.facts.runtime_env import parse_compute_apps

    holder = subprocess.Popen(["sleep", "60"])  # noqa: S603,S607
    try:
        h = Host(tmp_path, count=2, compute_apps=[{"pid": holder.pid, "name": "python3", "used_mib": 70000, "gpu": 1},
                                                   {"pid": 2 ** 22 + 7, "name": "gone", "used_mib": 1}])
        h.boot()
        argv = ["--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits"]
        out = h.run("nvidia-smi", *argv)
        assert out.returncode == 0 and out.stdout == f"{holder.pid}, python3, 70000\n"
        apps = parse_compute_apps(CommandResult("nvidia-smi", 0, out.stdout))
        assert apps is not None and [(a.pid, a.used_mib) for a in apps] == [(holder.pid, 70000)]
        hdr = h.run("nvidia-smi", "--query-compute-apps=pid,used_memory,gpu_bus_id", "--format=csv")
        assert hdr.stdout.splitlines() == ["pid, used_gpu_memory [MiB], gpu_bus_id",
                                           f"{holder.pid}, 70000 MiB, 00000000:18:00.0"]
    finally:
        holder.kill()
        holder.wait()
    assert h.run("nvidia-smi", *argv).stdout == ""  # the holder is gone: the GPUs are idle
    assert h.run("nvidia-smi", "--query-compute-apps=pid,bogus", "--format=csv").returncode == 2
