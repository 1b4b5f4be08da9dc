"""Where the mirror's content is built: a cache directory per part, keyed by a recipe hash.

A part is built into ``<cache>/<part>/<hash>.tmp-<pid>`` and renamed to ``<cache>/<part>/<hash>``
when complete, under a lock, so concurrent labs build it once and a half-built part is never
used. Re-runs find the directory and cost nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from glm5cluster.lab.dockerd import file_lock


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "glm5cluster"


def tree_hash(paths: Iterable[Path], *extra: str) -> str:
    """A hash of file names, modes and contents under ``paths`` (files or trees), plus ``extra``."""
    h = hashlib.sha256()
    for e in extra:
        h.update(e.encode() + b"\0")
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            if "__pycache__" in p.parts or p.suffix == ".pyc":
                continue
            rel = p.name if root.is_file() else p.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0" + oct(p.stat().st_mode & 0o111).encode() + b"\0")
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


locked = file_lock  # one lock helper for the whole lab


def cached_dir(part: str, key: str, build: Callable[[Path], None]) -> Path:
    """``<cache>/mirror/<part>/<key>``, built by ``build(tmpdir)`` once."""
    final = cache_root() / "mirror" / part / key
    if final.is_dir():
        return final
    with locked(final.parent / f".{key}.lock"):
        if final.is_dir():
            return final
        tmp = final.parent / f"{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            build(tmp)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
