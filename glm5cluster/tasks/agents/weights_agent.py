"""glm5cluster weights agent: runs ON a node with the tools venv's python (stdlib + huggingface_hub).

Uploaded by the ``weights.tools`` task; driven by ``engine/procedures/weights.py``. Commands:

  list   < request   resolve the revision to a commit, list files with sizes and LFS sha256
  check  < request   which files are verified (stamp: size+mtime; else re-hash), free disk space
  fetch  REQ_FILE    download files from the hub (resume, stall watchdog, retries, verify)
  pull   REQ_FILE    copy files from a peer that holds verified copies (rsync over ssh), verify
  stamp  < request   write the manifest stamp from this run's verified markers
  gate   DIR         ssh forced command on a source node: only ``rsync --server --sender`` in DIR

The HF token only ever arrives in the environment (``HF_TOKEN``); it is never printed.
State lives in ``<dir>/.glm5cluster/``: ``ready/`` (one marker per verified file, served to
peers), ``partial/`` (resumable partial files), ``progress.json`` and ``agent.log``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

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
    return {"commit": info.sha, "files": sorted(files, key=lambda f: f["path"])}


def cmd_check(req: dict[str, Any]) -> dict[str, Any]:
    root = Path(req["dir"])
    files: list[dict[str, Any]] = req["files"]
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
    dest = root / f["path"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(part, 0o644)
    os.replace(part, dest)
    mark(root, f)


def hub_download(root: Path, req: dict[str, Any], f: dict[str, Any], prog: Progress) -> None:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(req["repo"], f["path"], revision=req["commit"], endpoint=req.get("endpoint") or None)
    headers = build_hf_headers()
    part = sdir(root, "partial") / (qname(f["path"]) + ".part")
    size = int(f["size"])
    last_err = ""
    for attempt in range(int(req.get("retries", 5)) + 1):
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        h = hasher_for(f)
        if have:
            with part.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
        prog.set(f["path"], have)
        try:
            if have < size:
                hdrs = dict(headers)
                if have:
                    hdrs["Range"] = f"bytes={have}-"
                with urllib.request.urlopen(urllib.request.Request(url, headers=hdrs),  # noqa: S310
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


def ssh_argv(req: dict[str, Any]) -> list[str]:
    return ["ssh", "-i", req["key"], "-p", str(req.get("port", 22)), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={req['known_hosts']}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"ConnectTimeout={int(req.get('connect_timeout', 15))}",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]


def rsync(req: dict[str, Any], remote: str, dest: str, extra: list[str]) -> subprocess.CompletedProcess[str]:
    src = f"{req['source']}:{remote}" if req.get("key") else os.path.join(req["source"], remote)
    argv = ["rsync", "-s", "--timeout", str(int(req.get("stall_timeout", 120))), *extra]
    if req.get("key"):
        argv += ["-e", shlex.join(ssh_argv(req))]
    return subprocess.run([*argv, src, dest], capture_output=True, text=True, check=False)  # noqa: S603


class Peer:
    """What the source node has verified so far (its ``ready/`` markers), refreshed on demand."""

    def __init__(self, root: Path, req: dict[str, Any]) -> None:
        self.root, self.req = root, req
        self.lock = threading.Lock()
        self.ready: dict[str, dict[str, Any]] = {}
        self.state = "pending"
        self.last_change = time.monotonic()
        self._fetched = 0.0

    def refresh(self) -> None:
        with self.lock:
            if time.monotonic() - self._fetched < 1.0:
                return
            self._fetched = time.monotonic()
            into = sdir(self.root, "peer")
            r = rsync(self.req, f"{STATE}/ready/", str(into) + "/", ["-r", "--delete"])
            if r.returncode != 0:
                log(f"peer markers: rsync exit {r.returncode}: {r.stderr.strip()[-300:]}")
                return
            ready = {}
            for m in into.iterdir():
                if m.name == ".state" or m.name.endswith(".tmp"):  # ".gitattributes" is a marker
                    continue
                try:
                    ready[unquote(m.name)] = json.loads(m.read_text())
                except (OSError, ValueError):
                    continue
            if len(ready) != len(self.ready):
                self.last_change = time.monotonic()
            self.ready = ready
            st = into / ".state"
            self.state = st.read_text().strip() if st.exists() else "pending"


def peer_copy(root: Path, req: dict[str, Any], f: dict[str, Any], prog: Progress) -> None:
    peer: Peer = req["_peer"]
    wait = float(req.get("source_wait", 3600))
    while True:
        peer.refresh()
        rec = peer.ready.get(f["path"])
        if rec and rec.get("size") == f["size"] and (rec.get("sha256") or None) == (f.get("sha256") or None):
            break
        if peer.state.startswith("failed"):
            raise RuntimeError(f"source {req['source_name']} failed: {peer.state[7:].strip()}")
        if peer.state == "done":
            raise RuntimeError(f"source {req['source_name']} finished without {f['path']}")
        if time.monotonic() - peer.last_change > wait:
            raise RuntimeError(f"source {req['source_name']} made no progress for {wait:.0f}s")
        time.sleep(1.0)
    partial = sdir(root, "partial")
    last_err = ""
    for attempt in range(int(req.get("retries", 5)) + 1):
        got = sdir(root, "incoming") / qname(f["path"])
        r = rsync(req, f["path"], str(got), ["--partial", f"--partial-dir={partial}", "-t"])
        if r.returncode == 0 and got.exists() and got.stat().st_size == f["size"]:
            if digest_ok(f, hash_file(got, f)):
                place(root, got, f)
                prog.set(f["path"], f["size"], file_done=True)
                return
            got.unlink()
            last_err = f"{f['path']}: checksum mismatch after copy"
        else:
            last_err = f"{f['path']}: rsync exit {r.returncode}: {r.stderr.strip()[-300:]}"
        log(f"retry {attempt + 1}: {last_err}")
        time.sleep(min(2 ** attempt, 30) * 0.5)
    raise RuntimeError(f"gave up after {req.get('retries', 5)} retries: {last_err}")


def cmd_stamp(req: dict[str, Any]) -> dict[str, Any]:
    root = Path(req["dir"])
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
    """Forced command: allow only ``rsync --server --sender`` with relative paths inside root."""
    words = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    if words[:3] != ["rsync", "--server", "--sender"]:
        print("glm5cluster gate: only rsync --server --sender is allowed", file=sys.stderr)
        return 1
    for w in words[3:]:
        if w.startswith("-"):
            if w.startswith(("--remove", "--delete", "--log-file", "--write", "--only-write")):
                print(f"glm5cluster gate: option {w} refused", file=sys.stderr)
                return 1
            continue
        if w != "." and (w.startswith("/") or ".." in Path(w).parts or w.startswith("~")):
            print(f"glm5cluster gate: path {w} refused", file=sys.stderr)
            return 1
    os.chdir(root)
    os.execvp("rsync", words)  # noqa: S606 - argv, validated above
    return 1


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "gate":
        return cmd_gate(argv[2])
    if cmd in ("fetch", "pull"):
        req = json.loads(Path(argv[2]).read_text())
        root = Path(req["dir"])
        if cmd == "pull":
            req["_peer"] = Peer(root, req)
        try:
            out = run_workers(root, req, cmd, hub_download if cmd == "fetch" else peer_copy)
        except BaseException as e:  # noqa: BLE001 - reported through progress.json and the exit code
            log(f"failed: {e}")
            return 1
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
