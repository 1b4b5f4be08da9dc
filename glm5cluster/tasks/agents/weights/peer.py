"""Node to node: ``serve`` (only verified files, over stdin/stdout; ``gate`` is the ssh forced
command that allows nothing else) and ``pull`` (one long-lived stream per receiver thread,
bytes hashed as they arrive, placed only if they match the hub's metadata)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .files import (
    CHUNK,
    STATE,
    Progress,
    digest_ok,
    log,
    place,
    qname,
    resume_partial,
    safe_rel,
    sdir,
)

# one long-lived stream per receiver thread, served by ``serve``
SERVE_CMD = "glm5-weights-serve"  # the only command the gate lets through

HEARTBEAT = 2.0  # a waiting server says so this often (the receiver's stall watchdog stays quiet)

LAN_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"



def self_argv() -> list[str]:
    """This agent run again (a source directory on this machine): the uploaded file, or the
    package when it runs as modules (tests)."""
    if __package__:
        return [sys.executable, "-m", __package__]
    return [sys.executable, os.path.abspath(__file__)]


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



def cmd_gate(root: str) -> int:
    """ssh forced command for the run's key: only the ``serve`` stream of verified files in root."""
    if os.environ.get("SSH_ORIGINAL_COMMAND", "").strip() != SERVE_CMD:
        print(f"glm5cluster gate: only {SERVE_CMD} is allowed", file=sys.stderr)
        return 1
    return cmd_serve(root)



class Link:
    """One stream to the source's ``serve`` (over ssh with the run's key; a local process for a
    source directory on this machine)."""

    def __init__(self, req: dict[str, Any]) -> None:
        if req.get("key"):
            argv = [*ssh_argv(req), req["source"], SERVE_CMD]
        else:
            argv = [*self_argv(), "serve", req["source"]]
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
