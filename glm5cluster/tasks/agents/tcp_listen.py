"""A short-lived TCP listener (preflight's dist-init test): accept and close until the time is up.

Usage: ``python3 tcp_listen.py ADDRESS PORT SECONDS``.
"""

from __future__ import annotations

import socket
import sys
import time


def listen(address: str, port: int, seconds: float) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(64)
        s.settimeout(0.5)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                conn, _ = s.accept()
                conn.close()
            except OSError:
                pass


def main() -> None:
    listen(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))


if __name__ == "__main__":
    main()
