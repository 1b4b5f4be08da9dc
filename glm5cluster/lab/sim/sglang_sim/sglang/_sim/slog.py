"""Log lines in the real SGLang format, to stderr (journald / docker logs capture it)."""

import os
import sys
import threading
import time

_lock = threading.Lock()


def stamp():
    return time.strftime("%Y-%m-%d %H:%M:%S")


def raw(text):
    with _lock:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()


def log(msg, tp=None):
    """`[2026-02-27 14:33:21 TP0] msg` (or `[2026-02-27 14:33:21] msg` without a TP rank)."""
    prefix = f"[{stamp()} TP{tp}]" if tp is not None else f"[{stamp()}]"
    raw(f"{prefix} {msg}")


def log_ranks(ranks, fmt, **kw):
    for tp in ranks:
        log(fmt.format(tp=tp, **kw), tp=tp)


def c10d_stamp():
    """The `W227 14:33:13.089845986` style stamp of c10d / ProcessGroup lines."""
    t = time.time()
    lt = time.localtime(t)
    return time.strftime("%m%d %H:%M:%S", lt) + f".{int((t % 1) * 1e9):09d}"


def hostname():
    return os.uname().nodename
