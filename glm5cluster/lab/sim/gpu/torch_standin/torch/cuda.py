"""torch.cuda stand-in: device selection and synchronize (no GPU work is queued here)."""

from __future__ import annotations

import time

current = 0


def set_device(index: int) -> None:
    """The ``never_join`` knob: this node's GPUs never answer (a wedged GPU or driver), so its
    ranks block here and never reach the rendezvous."""
    global current
    from torch.distributed import knobs

    if knobs()["never_join"]:
        while True:
            time.sleep(3600)
    current = index


def synchronize() -> None:
    return None
