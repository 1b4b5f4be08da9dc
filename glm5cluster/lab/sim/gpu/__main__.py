"""Dispatch: ``python -m ... TOOL ARGS`` or ``run(TOOL, ARGS)`` from the in-image wrapper."""

from __future__ import annotations

import sys


def run(tool: str, args: list[str]) -> int:
    if tool == "nvidia-smi":
        from .nvidia import main
    elif tool in ("amd-smi", "rocm-smi", "rocminfo"):
        from .amd import main as amd_main

        return amd_main(tool, args)
    elif tool == "glm5lab-boot":
        from .state import boot as main
    elif tool == "glm5lab-set-driver":
        from .state import set_driver_main as main
    else:
        print(f"gpusim: unknown tool {tool}", file=sys.stderr)
        return 127
    return main(args)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python -m glm5cluster.lab.sim.gpu TOOL [ARGS...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1], sys.argv[2:]))
