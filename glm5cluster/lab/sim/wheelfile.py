"""Write a pure-Python wheel directly as a zip (offline, reproducible: fixed timestamps), for the
lab's simulated packages (the sglang simulator, the torch stand-in). Standard library only."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile

EPOCH = (2026, 1, 1, 0, 0, 0)


def record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def write_wheel(path: str, entries: list[tuple[str, bytes]], dist_info: str,
                meta: list[tuple[str, str]]) -> str:
    """``entries``: the package's (archive name, bytes); ``meta``: the files of ``dist_info``
    (METADATA, WHEEL, ...). RECORD is computed; the file appears at ``path`` atomically."""
    entries = list(entries) + [(f"{dist_info}/{name}", text.encode()) for name, text in meta]
    record = [record_line(a, d) for a, d in entries] + [f"{dist_info}/RECORD,,"]
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(tmp, path)
    return path
