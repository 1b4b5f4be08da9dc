"""A tiny stand-in for the Hugging Face hub (model_info with files_metadata, resolve with Range),
for testing the weights agent on 127.0.0.1 until the lab's hub simulator is there."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_repo(shards: int, size: int) -> dict[str, bytes]:
    files = {"config.json": json.dumps({"architectures": ["GlmMoeDsaForCausalLM"]}).encode()}
    wm = {}
    for i in range(1, shards + 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        files[name] = hashlib.sha256(name.encode()).digest() * (size // 32) + b"x" * (size % 32)
        wm[f"w{i}"] = name
    files["model.safetensors.index.json"] = json.dumps({"weight_map": wm}).encode()
    return files


class FakeHub:
    def __init__(self, files: dict[str, bytes], rate: float | None = None, token: str | None = None) -> None:
        self.files, self.rate, self.token = files, rate, token
        self.seen_auth: list[str] = []
        self.fail_after: int | None = None  # bytes served, then the connection drops (once)
        self.redirect_to: str | None = None  # file downloads answer 302 to this base URL (a CDN)
        hub = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                return

            def _auth(self) -> bool:
                got = self.headers.get("Authorization", "")
                hub.seen_auth.append(got)
                if hub.token and got != f"Bearer {hub.token}":
                    self.send_response(401)
                    self.end_headers()
                    return False
                return True

            def do_GET(self) -> None:
                if not self._auth():
                    return
                if self.path.startswith("/api/models/"):
                    sib = []
                    for n, b in hub.files.items():
                        e: dict[str, Any] = {"rfilename": n, "size": len(b)}
                        if n.endswith(".safetensors"):
                            e["lfs"] = {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b), "pointerSize": 134}
                        else:
                            e["blobId"] = hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()  # noqa: S324
                        sib.append(e)
                    body = json.dumps({"id": "zai-org/GLM-5-FP8", "sha": COMMIT, "siblings": sib}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if hub.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", hub.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                name = unquote(self.path.split("/resolve/", 1)[1].split("/", 1)[1])
                data = hub.files.get(name)
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                sent = 0
                for off in range(start, len(data), 65536):
                    chunk = data[off:off + 65536]
                    if hub.fail_after is not None and sent >= hub.fail_after:
                        hub.fail_after = None
                        self.connection.close()
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if hub.rate:
                        time.sleep(len(chunk) / hub.rate)

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # dropped connections are part of the tests

        self.server = Quiet(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
