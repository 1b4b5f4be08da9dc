"""Bandwidth caps: one shared pacer for the whole hub (a WAN link) and one per connection."""

import threading
import time


class Pacer:
    """Reserve transmit time for n bytes at `rate` bytes/s; sleeps until the slot has passed."""

    def __init__(self, rate):
        self.rate = float(rate or 0)
        self.lock = threading.Lock()
        self.next_free = 0.0

    def take(self, n):
        if self.rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / self.rate
            until = self.next_free
        delay = until - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def mbps_to_bytes(mbps):
    """Megabits per second (network convention) to bytes per second."""
    return float(mbps or 0) * 1_000_000 / 8
