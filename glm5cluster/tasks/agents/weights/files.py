"""The weights directory and its state: verified markers, partial files, the manifest stamp,
progress, safe paths, the worker pool; ``check`` and ``stamp``."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

STATE = ".glm5cluster"

MANIFEST = ".glm5cluster-manifest.json"

CHUNK = 1 << 20



def qname(path: str) -> str:
    return quote(path, safe="")



def sdir(root: Path, sub: str = "") -> Path:
    d = root / STATE / sub if sub else root / STATE
    d.mkdir(parents=True, exist_ok=True, mode=0o755)
    return d



def set_state(root: Path, value: str) -> None:
    p = sdir(root, "ready") / ".state"
    p.with_suffix(".tmp").write_text(value)
    os.replace(p.with_suffix(".tmp"), p)



def hasher_for(f: dict[str, Any]) -> Any:
    if f.get("sha256"):
        return hashlib.sha256()
    h = hashlib.sha1()  # noqa: S324 - git blob id, an integrity check against the hub's metadata
    h.update(b"blob %d\0" % f["size"])
    return h



def resume_partial(part: Path, f: dict, size: int):
    """Bytes already in ``part`` (a partial longer than the file is discarded) and a hasher
    that has seen them, so a resumed transfer hashes each byte once."""
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    h = hasher_for(f)
    if have:
        with part.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    return have, h



def digest_ok(f: dict[str, Any], hexdigest: str) -> bool:
    want = f.get("sha256") or f.get("blob_id")
    if not want or len(want) not in (40, 64):
        return True  # the hub gave no usable digest: size alone was checked
    return bool(hexdigest == want)



def hash_file(path: Path, f: dict[str, Any]) -> str:
    h = hasher_for(f)
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return str(h.hexdigest())



def mark(root: Path, f: dict[str, Any]) -> None:
    st = (root / f["path"]).stat()
    rec = {"path": f["path"], "size": st.st_size, "mtime_ns": st.st_mtime_ns,
           "sha256": f.get("sha256"), "blob_id": f.get("blob_id")}
    p = sdir(root, "ready") / qname(f["path"])
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, p)



class Progress:
    """Counts bytes and writes ``progress.json`` about once a second."""

    def __init__(self, root: Path, total: int, files: int, phase: str) -> None:
        self.root, self.total, self.files, self.phase = root, total, files, phase
        self.done = 0
        self.per_file: dict[str, int] = {}
        self.files_done = 0
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.error = ""
        self._last = 0.0

    def add(self, n: int, file_done: bool = False) -> None:
        with self.lock:
            self.done += n
            self.files_done += int(file_done)
        self._maybe_write(file_done)

    def set(self, path: str, n: int, file_done: bool = False) -> None:
        """Bytes of ``path`` on disk now (idempotent under retries and resumes)."""
        with self.lock:
            self.done += n - self.per_file.get(path, 0)
            self.per_file[path] = n
            self.files_done += int(file_done)
        self._maybe_write(file_done)

    def _maybe_write(self, file_done: bool) -> None:
        if time.monotonic() - self._last > 1.0 or file_done:
            self.write()

    def write(self, final: str = "") -> None:
        with self.lock:
            el = max(time.monotonic() - self.start, 1e-6)
            rate = self.done / el
            eta = (self.total - self.done) / rate if rate > 0 else None
            rec = {"phase": final or self.phase, "done": self.done, "total": self.total,
                   "rate": rate, "eta": eta, "files_done": self.files_done, "files": self.files,
                   "error": self.error, "pid": os.getpid()}
            self._last = time.monotonic()
        p = sdir(self.root) / "progress.json"
        with self.write_lock:  # workers report from several threads: one writer at a time
            tmp = p.with_name("progress.json.tmp")
            tmp.write_text(json.dumps(rec))
            os.replace(tmp, p)



class UnsafePath(ValueError):
    """A listed path that would land outside the weights directory (or on its state)."""



def safe_rel(root: Path, rel: Any) -> bool:
    """``rel`` is a plain relative path that stays inside ``root`` (no absolute path, no ``..``,
    no ``~``, no control characters, not our state or stamp, no symlink leading out of root)."""
    if not isinstance(rel, str) or not rel or any(ord(c) < 32 or c in "\\\x7f" for c in rel):
        return False
    p = Path(rel)
    if (p.is_absolute() or rel.startswith("~") or ".." in rel.split("/") or "." in rel.split("/")
            or "" in rel.split("/") or p.parts[0] in (STATE, MANIFEST, MANIFEST + ".tmp")):
        return False
    return (root / p).resolve().is_relative_to(root.resolve())



def check_paths(root: Path, files: Any) -> None:
    """Refuse the whole request before any byte is written when one listed path is unsafe:
    the listing comes from the hub or a mirror, and the agent runs as root on every node."""
    if not isinstance(files, list):
        raise UnsafePath("the file list is not a list")
    for f in files:
        rel = f.get("path") if isinstance(f, dict) else None
        if not safe_rel(root, rel):
            raise UnsafePath(f"the hub listed an unsafe path {rel!r} (absolute, '..', or outside {root}): refused")
        if not isinstance(f.get("size"), int) or f["size"] < 0:
            raise UnsafePath(f"the hub listed {rel!r} with a bad size {f.get('size')!r}")



def place(root: Path, part: Path, f: dict[str, Any]) -> None:
    if not safe_rel(root, f["path"]):  # checked again at the last moment (a symlink made since)
        raise UnsafePath(f"refusing to write {f['path']!r}: outside {root}")
    dest = root / f["path"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(part, 0o644)
    os.replace(part, dest)
    mark(root, f)



def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)



def run_workers(root: Path, req: dict[str, Any], phase: str, fn: Any) -> dict[str, Any]:
    files: list[dict[str, Any]] = req["files"]
    prog = Progress(root, sum(f["size"] for f in files), len(files), phase)
    prog.write()
    set_state(root, "running")
    try:
        with ThreadPoolExecutor(max_workers=int(req.get("workers", 4))) as pool:
            for fut in [pool.submit(fn, root, req, f, prog) for f in files]:
                fut.result()
    except BaseException as e:
        prog.error = str(e)
        prog.write("failed")
        set_state(root, f"failed: {e}")
        raise
    prog.write("done")
    set_state(root, "done")
    return {"done": len(files), "bytes": prog.total}



def cmd_check(req: dict[str, Any]) -> dict[str, Any]:
    root = Path(req["dir"])
    files: list[dict[str, Any]] = req["files"]
    check_paths(root, files)
    stamp: dict[str, Any] = {}
    try:
        stamp = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        stamp = {}
    same = stamp.get("commit") == req["commit"] and stamp.get("repo") == req["repo"]
    recorded = {e["path"]: e for e in stamp.get("files", [])} if same else {}
    status: dict[str, str] = {}
    hashed = 0
    for f in files:
        p = root / f["path"]
        try:
            st = p.stat()
        except OSError:
            status[f["path"]] = "missing"
            continue
        if st.st_size != f["size"]:
            status[f["path"]] = "size"
            continue
        rec = recorded.get(f["path"])
        if (not req.get("full") and rec and rec.get("mtime_ns") == st.st_mtime_ns
                and rec.get("size") == st.st_size and rec.get("sha256") == f.get("sha256")):
            status[f["path"]] = "ok"
            continue
        hashed += 1
        status[f["path"]] = "ok" if digest_ok(f, hash_file(p, f)) else "digest"
    partial = 0
    pdir = root / STATE / "partial"
    if pdir.is_dir():
        partial = sum(x.stat().st_size for x in pdir.rglob("*") if x.is_file())
    need = sum(f["size"] for f in files if status[f["path"]] != "ok") - partial
    probe = root
    while not probe.exists():
        probe = probe.parent
    vfs = os.statvfs(probe)
    if req.get("mark") and root.exists():
        ready = sdir(root, "ready")
        for m in ready.iterdir():
            m.unlink()
        for f in files:
            if status[f["path"]] == "ok":
                mark(root, f)
        set_state(root, "done" if all(v == "ok" for v in status.values()) else "pending")
    return {"status": status, "need": max(need, 0), "free": vfs.f_bavail * vfs.f_frsize,
            "partial": partial, "hashed": hashed, "stamp": bool(stamp), "stamp_commit": stamp.get("commit")}



def cmd_stamp(req: dict[str, Any]) -> dict[str, Any]:
    root = Path(req["dir"])
    check_paths(root, req["files"])
    entries = []
    for f in req["files"]:
        m = root / STATE / "ready" / qname(f["path"])
        st = (root / f["path"]).stat()
        rec = json.loads(m.read_text())
        if rec["size"] != st.st_size or rec["mtime_ns"] != st.st_mtime_ns or st.st_size != f["size"]:
            raise RuntimeError(f"{f['path']} changed since it was verified")
        entries.append({"path": f["path"], "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                        "sha256": f.get("sha256"), "blob_id": f.get("blob_id")})
    doc = {"repo": req["repo"], "commit": req["commit"], "files": entries,
           "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tool": "glm5cluster"}
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.chmod(tmp, 0o644)
    os.replace(tmp, root / MANIFEST)
    return {"files": len(entries)}
