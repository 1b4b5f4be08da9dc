"""What the runtime that will run SGLang sees (preflight's ``spec`` check), as one JSON line.

Run with the runtime's own interpreter: the venv python, or ``docker run`` of the server's image
with the server's flags. Standard library only; versions come from package metadata (no import of
torch, so it takes well under a second).

Usage: ``python3 runtime_env.py``.
"""

from __future__ import annotations

import json
import os
import resource
from importlib import metadata

PACKAGES = ("sglang", "torch", "transformers", "nvidia-nccl-cu12", "nvidia-nccl-cu13")


def limit(which: int) -> int:
    soft, _ = resource.getrlimit(which)
    return -1 if soft == resource.RLIM_INFINITY else int(soft)


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def main() -> None:
    try:
        st = os.statvfs("/dev/shm")
        shm = st.f_blocks * st.f_frsize
    except OSError:
        shm = -1
    out = {"memlock": limit(resource.RLIMIT_MEMLOCK), "nofile": limit(resource.RLIMIT_NOFILE), "shm_bytes": shm,
           "dev_infiniband": os.path.isdir("/dev/infiniband"),
           "versions": {p: v for p in PACKAGES if (v := version(p))}}
    print("GLM5ENV " + json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
