"""Log lines in the real SGLang format, to stderr (journald / docker logs capture it).

Every line comes from a template of ``log_templates.json`` (the real wheel's wording, with the
file:line it was copied from), picked for the running version's family; the unit tests fail when
a line is printed that is not in the table.
"""

import json
import os
import sys
import threading
import time

from sglang.version import __version__

_lock = threading.Lock()
TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log_templates.json")


def _vtuple(text):
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def load_table():
    with open(TABLE_FILE, encoding="utf-8") as f:
        return json.load(f)


def family_for(version, table):
    """The newest family not newer than version (the oldest family for anything older)."""
    names = sorted(table["families"], key=_vtuple)
    chosen = names[0]
    for name in names:
        if _vtuple(name) <= _vtuple(version):
            chosen = name
    return chosen


TABLE = load_table()
FAMILY = family_for(__version__, TABLE)
TEMPLATES = dict(TABLE["third_party"])
TEMPLATES.update(TABLE["families"][FAMILY]["templates"])


def has(key):
    return key in TEMPLATES


def stamp():
    return time.strftime("%Y-%m-%d %H:%M:%S")


def raw(text):
    with _lock:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()


def emit(key, tp=None, **fields):
    """Log one templated line with the prefix its process uses (see the table's `prefixes`)."""
    spec = TEMPLATES[key]
    msg = spec["text"].format(**fields)
    prefix = spec["prefix"]
    if prefix == "none":
        raw(msg)
    elif prefix == "uvicorn":
        raw(f"[{stamp()}] {spec['level']}:{' ' * (8 - len(spec['level']))} {msg}")
    elif prefix == "rank" and tp is not None:
        raw(f"[{stamp()} TP{tp}] {msg}")
    else:
        raw(f"[{stamp()}] {msg}")


def emit_ranks(ranks, key, **fields):
    for tp in ranks:
        emit(key, tp=tp, **fields)


def c10d_stamp():
    """The `W227 14:33:13.089845986` style stamp of c10d / ProcessGroup lines."""
    t = time.time()
    lt = time.localtime(t)
    return time.strftime("%m%d %H:%M:%S", lt) + f".{int((t % 1) * 1e9):09d}"


def hostname():
    return os.uname().nodename
