"""torch.cuda stand-in: device selection and synchronize (no GPU work is queued here)."""

from __future__ import annotations

current = 0


def set_device(index: int) -> None:
    global current
    current = index


def synchronize() -> None:
    return None
