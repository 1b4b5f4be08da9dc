"""glm5cluster weights agent: runs ON a node with the tools venv's python (stdlib + huggingface_hub).

Uploaded by the ``weights.tools`` task; driven by ``engine/procedures/weights.py``. Commands:

  list   < request   resolve the revision to a commit, list files with sizes and LFS sha256
  check  < request   which files are verified (stamp: size+mtime; else re-hash), free disk space
  fetch  REQ_FILE    download files from the hub (resume, stall watchdog, retries, verify)
  pull   REQ_FILE    copy files from a peer as it verifies them: one long-lived ssh stream per
                     worker, bytes hashed as they arrive, placed only if they match the hub
  stamp  < request   write the manifest stamp from this run's verified markers
  serve  DIR         the sending side of ``pull`` (stdin/stdout): only verified files of DIR
  gate   DIR         ssh forced command on a source node: only ``serve`` of DIR

The HF token only ever arrives in the environment (``HF_TOKEN``); it is never printed.
State lives in ``<dir>/.glm5cluster/``: ``ready/`` (one marker per verified file, served to
peers), ``partial/`` (resumable partial files, hub or peer), ``progress.json`` and ``agent.log``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

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


def cmd_list(req: dict[str, Any]) -> dict[str, Any]:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=req.get("endpoint") or None)
    info = api.model_info(req["repo"], revision=req["revision"], files_metadata=True)
    files = []
    for s in info.siblings or []:
        lfs = s.lfs
        sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        size = s.size if s.size is not None else (getattr(lfs, "size", None) if lfs else None)
        files.append({"path": s.rfilename, "size": int(size or 0), "sha256": sha, "blob_id": s.blob_id})
    check_paths(Path("/nonexistent-root"), files)
    return {"commit": info.sha, "files": sorted(files, key=lambda f: f["path"])}


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


def place(root: Path, part: Path, f: dict[str, Any]) -> None:
    if not safe_rel(root, f["path"]):  # checked again at the last moment (a symlink made since)
        raise UnsafePath(f"refusing to write {f['path']!r}: outside {root}")
    dest = root / f["path"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(part, 0o644)
    os.replace(part, dest)
    mark(root, f)


class RedirectRefused(RuntimeError):
    """The hub redirected somewhere the token or the bytes must not go."""


class HubRedirects(urllib.request.HTTPRedirectHandler):
    """Follow the hub's redirects (to its CDN), but never send the token to any origin other
    than the hub endpoint's, never go from https down to http, never leave http(s)."""

    def __init__(self, origin: str) -> None:
        o = urlsplit(origin)
        self.origin = (o.scheme, o.netloc.lower())

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if new.scheme not in ("http", "https"):
            raise RedirectRefused(f"the hub redirected to a {new.scheme or 'relative'} URL: refused")
        if old.scheme == "https" and new.scheme == "http":
            raise RedirectRefused(f"the hub redirected from https to http ({new.netloc}): refused")
        out = super().redirect_request(req, fp, code, msg, headers, newurl)
        if out is not None and (new.scheme, new.netloc.lower()) != self.origin:
            out.remove_header("Authorization")  # the token is for the hub endpoint only
        return out


def hub_opener(url: str) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(HubRedirects(url))


def hub_download(root: Path, req: dict[str, Any], f: dict[str, Any], prog: Progress) -> None:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(req["repo"], f["path"], revision=req["commit"], endpoint=req.get("endpoint") or None)
    headers = build_hf_headers()
    part = sdir(root, "partial") / (qname(f["path"]) + ".part")
    size = int(f["size"])
    last_err = ""
    for attempt in range(int(req.get("retries", 5)) + 1):
        have, h = resume_partial(part, f, size)
        prog.set(f["path"], have)
        try:
            if have < size:
                hdrs = dict(headers)
                if have:
                    hdrs["Range"] = f"bytes={have}-"
                with hub_opener(url).open(urllib.request.Request(url, headers=hdrs),  # noqa: S310
                                          timeout=float(req.get("stall_timeout", 120))) as resp:
                    mode = "ab"
                    if have and resp.status == 200:  # the server ignored Range: start over
                        have, mode, h = 0, "wb", hasher_for(f)
                    with part.open(mode) as out:
                        while chunk := resp.read(CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            have += len(chunk)
                            prog.set(f["path"], have)
            got = part.stat().st_size
            if got != size:
                last_err = f"{f['path']}: connection ended at {got} of {size} bytes"
            elif not digest_ok(f, str(h.hexdigest())):
                last_err = f"{f['path']}: checksum mismatch, fetching again"
                part.unlink()
                prog.set(f["path"], 0)
            else:
                place(root, part, f)
                prog.set(f["path"], size, file_done=True)
                return
        except urllib.error.HTTPError as e:
            if e.code in (401, 403, 404):
                raise RuntimeError(f"{f['path']}: hub answered {e.code} {e.reason}") from None
            last_err = f"{f['path']}: hub answered {e.code}"
        except (OSError, TimeoutError) as e:  # includes URLError, resets, stalls (socket timeout)
            last_err = f"{f['path']}: {type(e).__name__}: {e}"
        log(f"retry {attempt + 1}: {last_err}")
        time.sleep(min(2 ** attempt, 30) * 0.5)
    raise RuntimeError(f"gave up after {req.get('retries', 5)} retries: {last_err}")


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


# ---- node to node: one long-lived stream per receiver thread, served by ``serve`` ----

SERVE_CMD = "glm5-weights-serve"  # the only command the gate lets through
HEARTBEAT = 2.0  # a waiting server says so this often (the receiver's stall watchdog stays quiet)
LAN_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"


def ssh_argv(req: dict[str, Any]) -> list[str]:
    return ["ssh", "-T", "-x", "-a", "-i", req["key"], "-p", str(req.get("port", 22)), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={req['known_hosts']}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"ConnectTimeout={int(req.get('connect_timeout', 15))}", "-o", "Compression=no",
            "-c", LAN_CIPHERS, "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
            "-o", "LogLevel=ERROR"]


def big_pipe(fd: int) -> None:
    try:  # fewer, larger reads and writes through the pipe (F_SETPIPE_SZ)
        fcntl.fcntl(fd, 1031, 1 << 20)
    except OSError:
        pass


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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


def verified(root: Path, rel: str) -> dict[str, Any] | None:
    try:
        rec = json.loads((root / STATE / "ready" / qname(rel)).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def wait_verified(root: Path, rel: str, wait: float, out: int) -> dict[str, Any] | str:
    """This node's verified record of ``rel``, waiting for it while the node is still working;
    an error text when it never will be (failed, finished without it, no progress)."""
    ready = root / STATE / "ready"
    last_n, changed, beat = -1, time.monotonic(), time.monotonic()
    while True:
        try:
            state = (ready / ".state").read_text().strip()
        except OSError:
            state = "pending"
        rec = verified(root, rel)
        if rec:
            return rec
        if state.startswith("failed"):
            return f"failed: {state[7:].strip()}"
        if state == "done":
            return f"finished without {rel}"
        try:
            n = len(os.listdir(ready))
        except OSError:
            n = 0
        now = time.monotonic()
        if n != last_n:
            last_n, changed = n, now
        elif now - changed > wait:
            return f"made no progress for {wait:.0f}s"
        if now - beat >= HEARTBEAT:
            write_all(out, json.dumps({"wait": state, "ready": n}).encode() + b"\n")
            beat = now
        time.sleep(0.2)


def send_range(fh: Any, out: int, offset: int, count: int) -> None:
    src = fh.fileno()
    while count > 0:
        try:
            n = os.sendfile(out, src, offset, min(count, 1 << 24))
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            os.lseek(src, offset, os.SEEK_SET)
            data = os.read(src, min(count, CHUNK))
            write_all(out, data)
            n = len(data)
        if n == 0:
            raise OSError(f"{fh.name} ended early")
        offset, count = offset + n, count - n


def cmd_serve(root_s: str) -> int:
    """Serve this node's VERIFIED files of ``root`` over stdin/stdout, one request a line:
    ``GET <quoted path> <offset> <wait s>`` -> a JSON header line, then the bytes from offset.
    Waits for a file this node is still fetching (pipelining); never reads outside ``root``."""
    root = Path(root_s)
    out = sys.stdout.fileno()
    big_pipe(out)
    for raw in sys.stdin.buffer:
        words = raw.decode(errors="replace").split()
        if len(words) != 4 or words[0] != "GET":
            write_all(out, json.dumps({"error": "bad request", "final": True}).encode() + b"\n")
            return 1
        rel, offset, wait = unquote(words[1]), int(words[2]), float(words[3])
        if not safe_rel(root, rel):
            write_all(out, json.dumps({"error": f"path {rel!r} refused", "final": True}).encode() + b"\n")
            return 1
        rec = wait_verified(root, rel, wait, out)
        if isinstance(rec, str):
            write_all(out, json.dumps({"error": rec, "final": True}).encode() + b"\n")
            continue
        try:
            fh = (root / rel).open("rb")
        except OSError as e:
            write_all(out, json.dumps({"error": f"{rel}: {e.strerror}"}).encode() + b"\n")
            continue
        with fh:
            st = os.fstat(fh.fileno())
            if st.st_size != rec.get("size") or st.st_mtime_ns != rec.get("mtime_ns") or not 0 <= offset <= st.st_size:
                write_all(out, json.dumps({"error": f"{rel} changed since it was verified"}).encode() + b"\n")
                continue
            write_all(out, json.dumps({"size": st.st_size, "offset": offset}).encode() + b"\n")
            send_range(fh, out, offset, st.st_size - offset)
    return 0


class Link:
    """One stream to the source's ``serve`` (over ssh with the run's key; a local process for a
    source directory on this machine)."""

    def __init__(self, req: dict[str, Any]) -> None:
        if req.get("key"):
            argv = [*ssh_argv(req), req["source"], SERVE_CMD]
        else:
            argv = [sys.executable, os.path.abspath(__file__), "serve", req["source"]]
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603
                                     stderr=self.err, bufsize=0)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.fd, self.win = self.proc.stdout.fileno(), self.proc.stdin
        big_pipe(self.fd)
        self.buf = b""
        self.timeout = float(req.get("stall_timeout", 120))
        self.name = req.get("source_name") or req["source"]

    def _more(self) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            raise TimeoutError(f"no data from {self.name} for {self.timeout:.0f}s")
        chunk = os.read(self.fd, CHUNK)
        if not chunk:
            self.proc.wait(timeout=5)
            self.err.seek(0)
            tail = self.err.read().decode(errors="replace").strip()[-300:]
            raise EOFError(f"stream from {self.name} closed (exit {self.proc.returncode}){': ' + tail if tail else ''}")
        return chunk

    def request(self, rel: str, offset: int, wait: float) -> dict[str, Any]:
        self.win.write(f"GET {qname(rel)} {offset} {wait:.0f}\n".encode())
        self.win.flush()
        while True:
            while b"\n" not in self.buf:
                self.buf += self._more()
            line, _, self.buf = self.buf.partition(b"\n")
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError(f"bad answer from {self.name}")
            if "wait" not in doc:
                return doc

    def stream(self, count: int, sink: Any) -> None:
        if self.buf:
            take, self.buf = self.buf[:count], self.buf[count:]
            sink(take)
            count -= len(take)
        while count > 0:
            chunk = self._more()
            if len(chunk) > count:
                chunk, self.buf = chunk[:count], chunk[count:]
            sink(chunk)
            count -= len(chunk)

    def close(self) -> None:
        try:
            self.win.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.err.close()


class SourceGone(RuntimeError):
    """The source will never hold the file: no retry helps."""


def receive(link: Link, part: Path, path: str, have: int, size: int, h: Any, prog: Progress) -> None:
    """Append the stream's bytes to ``part`` and the hash in one pass."""
    with part.open("ab") as out:
        def sink(chunk: bytes) -> None:
            nonlocal have
            out.write(chunk)
            h.update(chunk)
            have += len(chunk)
            prog.set(path, have)
        link.stream(size - have, sink)


def peer_copy(root: Path, req: dict[str, Any], f: dict[str, Any], prog: Progress) -> None:
    """Copy one file from the source, hashing the bytes as they arrive (one pass), and place it
    only when size and digest match the HUB's metadata (not the source's word)."""
    local: threading.local = req["_local"]
    part = sdir(root, "partial") / (qname(f["path"]) + ".part")
    size, wait = int(f["size"]), float(req.get("source_wait", 3600))
    last_err = ""
    for attempt in range(int(req.get("retries", 5)) + 1):
        have, h = resume_partial(part, f, size)
        prog.set(f["path"], have)
        try:
            if getattr(local, "link", None) is None:
                local.link = Link(req)
                req["_links"].append(local.link)
            link: Link = local.link
            doc = link.request(f["path"], have, wait)
            if doc.get("final"):
                raise SourceGone(f"source {req['source_name']} {doc['error']}")
            if "error" in doc or int(doc.get("size", -1)) != size or int(doc.get("offset", -1)) != have:
                raise ValueError(doc.get("error") or f"{f['path']}: source holds {doc.get('size')} bytes, want {size}")
            receive(link, part, f["path"], have, size, h, prog)
            if digest_ok(f, str(h.hexdigest())):
                place(root, part, f)
                prog.set(f["path"], size, file_done=True)
                return
            part.unlink()
            prog.set(f["path"], 0)
            last_err = f"{f['path']}: checksum mismatch after copy"
        except SourceGone:
            raise
        except (OSError, TimeoutError, EOFError, ValueError) as e:
            last_err = f"{f['path']}: {type(e).__name__}: {e}"
            if getattr(local, "link", None) is not None:
                local.link.close()
                local.link = None
        log(f"retry {attempt + 1}: {last_err}")
        time.sleep(min(2 ** attempt, 30) * 0.5)
    raise RuntimeError(f"gave up after {req.get('retries', 5)} retries: {last_err}")


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


def cmd_gate(root: str) -> int:
    """ssh forced command for the run's key: only the ``serve`` stream of verified files in root."""
    if os.environ.get("SSH_ORIGINAL_COMMAND", "").strip() != SERVE_CMD:
        print(f"glm5cluster gate: only {SERVE_CMD} is allowed", file=sys.stderr)
        return 1
    return cmd_serve(root)


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "gate":
        return cmd_gate(argv[2])
    if cmd == "serve":
        return cmd_serve(argv[2])
    if cmd in ("fetch", "pull"):
        req = json.loads(Path(argv[2]).read_text())
        root = Path(req["dir"])
        req["_local"], req["_links"] = threading.local(), []
        try:
            check_paths(root, req.get("files"))
            out = run_workers(root, req, cmd, hub_download if cmd == "fetch" else peer_copy)
        except BaseException as e:  # noqa: BLE001 - reported through progress.json and the exit code
            log(f"failed: {e}")
            return 1
        finally:
            for link in req["_links"]:
                link.close()
        log(f"done: {json.dumps(out)}")
        return 0
    req = json.loads(sys.stdin.read() or "{}")
    handlers = {"list": cmd_list, "check": cmd_check, "stamp": cmd_stamp}
    if cmd not in handlers:
        print(f"unknown command {cmd!r}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(handlers[cmd](req)))
    except Exception as e:  # noqa: BLE001 - one line for the controller, never a traceback with secrets
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
