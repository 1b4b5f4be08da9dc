"""Ask the (simulated) GPU tools what this node has, as CUDA init would find out."""

import shutil
import subprocess

NO_DRIVER = ("RuntimeError: Found no NVIDIA driver on your system. Please check that you have an "
             "NVIDIA GPU and installed a driver from http://www.nvidia.com/Download/index.aspx")


class GpuError(Exception):
    def __init__(self, final, detail=None):
        super().__init__(final)
        self.final = final
        self.detail = detail


def _run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return subprocess.CompletedProcess(argv, 127, "", str(e))


def probe():
    """(count, memory GiB per GPU, "CUDA" or "HIP"); raises GpuError with the torch wording when none usable."""
    if shutil.which("nvidia-smi"):
        res = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
        if res.returncode != 0:
            text = (res.stdout + res.stderr).strip().splitlines()
            detail = text[0] if text else f"nvidia-smi exited {res.returncode}"
            if "mismatch" in detail.lower():
                raise GpuError("RuntimeError: Unexpected error from cudaGetDeviceCount(). Did you run "
                               "some cuda functions before calling NumCudaDevices() that might have "
                               "already set an error? Error 803: system has unsupported display driver "
                               "/ cuda driver combination", detail)
            raise GpuError(NO_DRIVER, detail)
        rows = [r for r in res.stdout.splitlines() if r.strip()]
        if not rows:
            raise GpuError("RuntimeError: No CUDA GPUs are available")
        try:
            mem = float(rows[0].split(",")[-1].strip()) / 1024.0
        except ValueError:
            mem = 139.8
        return len(rows), mem, "CUDA"
    if shutil.which("amd-smi"):
        res = _run(["amd-smi", "list"])
        count = sum(1 for line in res.stdout.splitlines() if line.startswith("GPU:"))
        if res.returncode != 0 or count == 0:
            raise GpuError("RuntimeError: No HIP GPUs are available", (res.stderr or "").strip() or None)
        return count, 191.5, "HIP"
    raise GpuError(NO_DRIVER, "nvidia-smi: command not found")
