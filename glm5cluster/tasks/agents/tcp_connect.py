"""One TCP connect with a timeout (preflight's dist-init test).

Usage: ``python3 tcp_connect.py ADDRESS PORT SECONDS``; prints ``ok`` or ``error: <why>``.
"""

from __future__ import annotations

import socket
import sys


def connect(address: str, port: int, seconds: float) -> str:
    try:
        socket.create_connection((address, port), timeout=seconds).close()
        return "ok"
    except OSError as e:
        return f"error: {e.strerror or e or 'timed out'}"


def main() -> None:
    print(connect(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))


if __name__ == "__main__":
    main()
