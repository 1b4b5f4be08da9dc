"""The lab model hub: the Hugging Face Hub API subset that huggingface_hub uses to list and download.

Endpoints (repo = org/name, rev = main or the repo's commit):
  GET  /api/models/{repo}[/revision/{rev}]      model info (siblings; sizes + LFS with ?blobs=true)
  GET  /api/models/{repo}/tree/{rev}[/{path}]   file listing (oid, size, lfs {oid, size, pointerSize})
  POST /api/models/{repo}/paths-info/{rev}      listing of given paths (form or JSON `paths`)
  HEAD|GET /{repo}/resolve/{rev}/{path}         file, with X-Repo-Commit, ETag, X-Linked-Etag/Size
                                                (LFS), Accept-Ranges; Range -> 206 (resume)
  GET  /api/whoami-v2                           token check
No X-Xet-* headers are ever sent, so clients download over plain HTTP.

CLI: python -m glm5cluster.lab.sim.hub.server --data DIR --port P --shards N --shard-mb M
     --rate-mbps R [--conn-rate-mbps R] [--token-file F] [--host H] [--log FILE]
"""

import argparse
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from glm5cluster.lab.sim.hub import repo as repomod
from glm5cluster.lab.sim.hub.throttle import Pacer, mbps_to_bytes

SEND_CHUNK = 64 * 1024


class Hub:
    def __init__(self, data, token=None, rate=0.0, conn_rate=0.0, log_path=None):
        self.data = data
        self.token = token
        self.total = Pacer(rate)
        self.conn_rate = conn_rate
        self.log_path = log_path or os.path.join(data, "requests.log")
        self.log_lock = threading.Lock()
        self.meta_lock = threading.Lock()
        self._meta = {}

    def repo_dir(self, repo_id):
        path = os.path.join(self.data, *repo_id.split("/"))
        return path if os.path.isdir(path) else None

    def meta(self, repo_id):
        with self.meta_lock:
            d = self.repo_dir(repo_id)
            cache = os.path.join(self.data, ".meta", repo_id.replace("/", "__") + ".json")
            return repomod.file_metadata(d, cache)

    def commit(self, repo_id):
        return repomod.commit_for(self.repo_dir(repo_id), repo_id)

    def record(self, entry):
        with self.log_lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    hub: Hub  # bound by make_server
    protocol_version = "HTTP/1.1"
    server_version = "glm5cluster-lab-hub"

    def log_message(self, fmt, *args):
        pass

    # ---- helpers -------------------------------------------------------------------------
    def _finish_log(self, status, sent=0):
        self.hub.record({"time": time.time(), "client": self.client_address[0], "method": self.command,
                         "path": self.path, "range": self.headers.get("Range"), "status": status,
                         "bytes": sent, "auth": bool(self.headers.get("Authorization"))})

    def send_json(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._finish_log(status, len(data))

    def error(self, status, code, message, extra=None):
        headers = {"X-Error-Code": code, "X-Error-Message": message} if code else {"X-Error-Message": message}
        headers.update(extra or {})
        self.send_json(status, {"error": message}, headers)

    def authorized(self):
        if not self.hub.token:
            return True
        auth = self.headers.get("Authorization", "")
        if auth == f"Bearer {self.hub.token}":
            return True
        if auth:
            self.error(401, None, "Invalid credentials in Authorization header")
        else:
            self.error(401, "GatedRepo", "Access to this repository is restricted. You must be "
                                         "authenticated to access it. Please log in.")
        return False

    def find_repo(self, org, name, rev):
        repo_id = f"{org}/{name}"
        if self.hub.repo_dir(repo_id) is None:
            self.error(404, "RepoNotFound", "Repository not found")
            return None, None
        commit = self.hub.commit(repo_id)
        rev = urllib.parse.unquote(rev or "main")
        if rev not in ("main", commit):
            self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None, None
        return repo_id, commit

    # ---- routing -------------------------------------------------------------------------
    ROUTES = [
        ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
        ("GET", re.compile(r"^/api/models/([^/]+)/([^/]+)(?:/revision/([^/]+))?$"), "model_info"),
        ("GET", re.compile(r"^/api/models/([^/]+)/([^/]+)/tree/([^/]+)(?:/(.*))?$"), "tree"),
        ("POST", re.compile(r"^/api/models/([^/]+)/([^/]+)/paths-info/([^/]+)$"), "paths_info"),
        ("GET", re.compile(r"^/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$"), "resolve"),
    ]

    def dispatch(self, method):
        parsed = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(parsed.query)
        for m, rx, name in self.ROUTES:
            match = rx.match(parsed.path)
            if match and (m == method or (m == "GET" and method == "HEAD")):
                if name != "whoami" and not self.authorized():
                    return
                return getattr(self, name)(*match.groups())
        self.error(404, None, "Not Found")

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    # ---- API -----------------------------------------------------------------------------
    def whoami(self):
        auth = self.headers.get("Authorization", "")
        if self.hub.token and auth == f"Bearer {self.hub.token}" or (not self.hub.token and auth):
            return self.send_json(200, {"type": "user", "id": "lab", "name": "lab-user",
                                        "fullname": "Lab User", "auth": {"type": "access_token",
                                        "accessToken": {"displayName": "lab", "role": "read"}}})
        self.error(401, None, "Invalid credentials in Authorization header")

    @staticmethod
    def tree_entry(path, m):
        entry = {"type": "file", "oid": m["oid"], "size": m["size"], "path": path}
        if m["lfs"]:
            entry["lfs"] = {"oid": m["lfs"]["sha256"], "size": m["lfs"]["size"], "pointerSize": 134}
        return entry

    def model_info(self, org, name, rev):
        repo_id, commit = self.find_repo(org, name, rev)
        if not repo_id:
            return
        meta = self.hub.meta(repo_id)
        blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, m in meta.items():
            sib = {"rfilename": path}
            if blobs:
                sib.update({"blobId": m["oid"], "size": m["size"]})
                if m["lfs"]:
                    sib["lfs"] = {"sha256": m["lfs"]["sha256"], "size": m["size"], "pointerSize": 134}
            siblings.append(sib)
        config = json.load(open(os.path.join(self.hub.repo_dir(repo_id), "config.json"), encoding="utf-8"))
        self.send_json(200, {
            "_id": commit[:24], "id": repo_id, "modelId": repo_id, "author": org, "sha": commit,
            "lastModified": "2026-02-11T00:00:00.000Z", "createdAt": "2026-02-11T00:00:00.000Z",
            "private": False, "gated": "auto" if self.hub.token else False, "disabled": False,
            "downloads": 0, "likes": 0, "library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["transformers", "safetensors", "glm_moe_dsa", "text-generation", "license:mit"],
            "config": {"architectures": config.get("architectures"), "model_type": config.get("model_type")},
            "cardData": {"license": "mit", "library_name": "transformers"},
            "siblings": siblings, "spaces": [],
            "usedStorage": sum(m["size"] for m in meta.values()),
        })

    def tree(self, org, name, rev, sub):
        repo_id, commit = self.find_repo(org, name, rev)
        if not repo_id:
            return
        meta = self.hub.meta(repo_id)
        prefix = (urllib.parse.unquote(sub).strip("/") + "/") if sub else ""
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        entries, dirs = [], set()
        for path, m in meta.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            if "/" in rest and not recursive:
                dirs.add(prefix + rest.split("/", 1)[0])
                continue
            if "/" in rest:
                parts = rest.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    dirs.add(prefix + "/".join(parts[:i]))
            entries.append(self.tree_entry(path, m))
        if prefix and not entries and not dirs:
            return self.error(404, "EntryNotFound", f"{prefix.rstrip('/')} does not exist on \"{rev}\"")
        folders = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(dirs)]
        self.send_json(200, folders + entries)

    def paths_info(self, org, name, rev):
        repo_id, commit = self.find_repo(org, name, rev)
        if not repo_id:
            return
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        if "json" in (self.headers.get("Content-Type") or ""):
            paths = json.loads(body or "{}").get("paths", [])
        else:
            paths = urllib.parse.parse_qs(body).get("paths", [])
        meta = self.hub.meta(repo_id)
        out = [self.tree_entry(p, meta[p]) for p in paths if p in meta]
        self.send_json(200, out)

    # ---- files ---------------------------------------------------------------------------
    def resolve(self, org, name, rev, path):
        repo_id, commit = self.find_repo(org, name, rev)
        if not repo_id:
            return
        path = urllib.parse.unquote(path)
        meta = self.hub.meta(repo_id).get(path)
        if meta is None:
            return self.error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"",
                              {"X-Repo-Commit": commit})
        size = meta["size"]
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes",
                   "Content-Disposition": f'inline; filename*=UTF-8\'\'{os.path.basename(path)}; '
                                          f'filename="{os.path.basename(path)}";'}
        if meta["lfs"]:
            headers["ETag"] = f'"{meta["lfs"]["sha256"]}"'
            headers["X-Linked-Etag"] = f'"{meta["lfs"]["sha256"]}"'
            headers["X-Linked-Size"] = str(size)
        else:
            headers["ETag"] = f'"{meta["oid"]}"'
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self.error(416, None, "Invalid range", {"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start = max(0, size - int(m.group(2)))
            if start >= size or start > end:
                return self.error(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if meta["lfs"] else "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return self._finish_log(status, 0)
        sent = self.stream(os.path.join(self.hub.repo_dir(repo_id), path), start, length)
        self._finish_log(status, sent)

    def stream(self, full, start, length):
        conn = Pacer(self.hub.conn_rate)
        sent = 0
        with open(full, "rb") as f:
            f.seek(start)
            while sent < length:
                chunk = f.read(min(SEND_CHUNK, length - sent))
                if not chunk:
                    break
                self.hub.total.take(len(chunk))
                conn.take(len(chunk))
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
        return sent


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    hub: Hub  # bound by make_server


def prepare_data(data, shards, shard_bytes, repos=repomod.REPOS):
    for repo_id in repos:
        repomod.generate_repo(os.path.join(data, *repo_id.split("/")), shards, shard_bytes, repo_id)


def make_server(data, host="0.0.0.0", port=0, token=None, rate_mbps=0.0, conn_rate_mbps=0.0, log_path=None):
    """A HubServer (not yet serving) over the repositories under `data`; port 0 picks a free one."""
    hub = Hub(data, token=token, rate=mbps_to_bytes(rate_mbps), conn_rate=mbps_to_bytes(conn_rate_mbps),
              log_path=log_path)
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    srv = HubServer((host, port), handler)
    srv.hub = hub
    return srv


def start_in_thread(srv):
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return t


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m glm5cluster.lab.sim.hub.server",
                                description="Lab model hub (Hugging Face Hub API subset).")
    p.add_argument("--data", required=True, help="directory holding <org>/<name> repositories")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--shard-mb", type=float, default=4.0, help="size of each shard in MiB")
    p.add_argument("--rate-mbps", type=float, default=0.0, help="total cap, megabits/s (0: none)")
    p.add_argument("--conn-rate-mbps", type=float, default=0.0, help="per-connection cap, megabits/s")
    p.add_argument("--token-file", help="require `Authorization: Bearer <token>` with this token")
    p.add_argument("--log", help="request log (JSON lines); default DATA/requests.log")
    a = p.parse_args(argv)
    token = None
    if a.token_file:
        with open(a.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    os.makedirs(a.data, exist_ok=True)
    prepare_data(a.data, a.shards, int(a.shard_mb * 1024 * 1024))
    srv = make_server(a.data, a.host, a.port, token, a.rate_mbps, a.conn_rate_mbps, a.log)
    for repo_id in repomod.REPOS:
        srv.hub.meta(repo_id)  # hash once before serving
    print(f"hub serving {a.data} on http://{a.host}:{srv.server_address[1]}", file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
