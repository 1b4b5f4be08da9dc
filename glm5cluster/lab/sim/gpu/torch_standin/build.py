"""Build the torch stand-in as ``torch-<version>-py3-none-any.whl`` (a zip written directly:
offline, reproducible), so a lab host's SGLang venv can ``pip install`` it and the real NCCL
probe runs there with the runtime's own interpreter, as on a GPU host.

    from glm5cluster.lab.sim.gpu.torch_standin.build import build_wheel
    build_wheel(out_dir, "2.9.1+glm5lab")

The version is what the package metadata says (what preflight's ``spec`` check reads), so a lab
can install one build on one node and another elsewhere: a real version mismatch.
"""

from __future__ import annotations

import os

from glm5cluster.lab.sim.wheelfile import write_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "2.9.1+glm5lab"
METADATA = """Metadata-Version: 2.1
Name: torch
Version: {version}
Summary: glm5cluster lab stand-in for torch.distributed (not the real torch; no GPU work)
Requires-Python: >=3.10
"""
WHEEL = "Wheel-Version: 1.0\nGenerator: glm5cluster-sim-build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def build_wheel(out_dir: str, version: str = VERSION) -> str:
    """Write the wheel into out_dir; return its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"torch-{version.replace('-', '_')}-py3-none-any.whl")
    entries: list[tuple[str, bytes]] = []
    root = os.path.join(HERE, "torch")
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), "rb") as f:
                entries.append((f"torch/{name}", f.read()))
    entries.append(("torch/version.py", f'__version__ = "{version}"\n'.encode()))
    return write_wheel(path, entries, f"torch-{version}.dist-info",
                       [("METADATA", METADATA.format(version=version)), ("WHEEL", WHEEL),
                        ("top_level.txt", "torch\n")])
