"""The node-side programs (``glm5cluster/tasks/agents/``) run as the nodes run them:
``python3 -c <source> args`` (``agents.command``), against a local HTTP server or socket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from glm5cluster.tasks import agents


def run(name: str, *args: str, stdin: str = "\n") -> str:
    argv = agents.command(name, *args)
    assert argv[:2] == ["python3", "-c"]
    out = subprocess.run([sys.executable, *argv[1:]], input=stdin, capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout.strip()


class Fake:
    """node 0's HTTP API as SGLang 0.5.23 answers it (``/health`` needs no key)."""

    def __init__(self) -> None:
        self.key = "k3y"
        self.health = 200
        self.seen: list[tuple[str, str | None]] = []


@pytest.fixture
def server() -> Iterator[tuple[Fake, int]]:
    fake = Fake()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, code: int, doc: object) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authed(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {fake.key}"

        def do_GET(self) -> None:  # noqa: N802
            fake.seen.append((self.path, self.headers.get("Authorization")))
            if self.path == "/health":
                self._send(fake.health, {})
            elif self.path == "/v1/models":
                if not self._authed():
                    self._send(401, {"error": "unauthorized"})
                else:
                    self._send(200, {"object": "list", "data": [{"id": "zai-org/GLM-5", "object": "model"}]})
            else:
                self._send(404, {})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self._authed():
                self._send(401, {"error": "unauthorized"})
                return
            msg: dict[str, Any] = {"role": "assistant", "content": "391"}
            thinking = (body.get("chat_template_kwargs") or {}).get("enable_thinking", True)
            if body.get("tools"):
                msg = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
            elif thinking:
                msg["reasoning_content"] = "17 * 23 = 391"
            self._send(200, {"choices": [{"index": 0, "message": msg}]})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield fake, httpd.server_address[1]
    httpd.shutdown()


def test_health_probe_reads_the_key_from_stdin_only(server: tuple[Fake, int]) -> None:
    fake, port = server
    line = run("health_probe", str(port), stdin=fake.key + "\n")
    assert line == '@@glm5cluster:health@@ 200 ["zai-org/GLM-5"]'
    assert fake.seen == [("/health", None), ("/v1/models", f"Bearer {fake.key}")]  # /health without the key
    fake.health = 503
    assert run("health_probe", str(port), stdin=fake.key + "\n") == "@@glm5cluster:health@@ 503 []"
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed = free.getsockname()[1]
    free.close()
    assert run("health_probe", str(closed)).startswith("@@glm5cluster:health@@ 0 ")


def test_smoke_test_three_requests(server: tuple[Fake, int]) -> None:
    fake, port = server
    doc = json.loads(run("smoke_test", str(port), "zai-org/GLM-5", "10", stdin=fake.key + "\n"))
    assert doc["thinking"]["reasoning"] and not doc["instruct"]["reasoning"] and doc["instruct"]["content"]
    assert doc["tool"]["tools"] == ["get_weather"]
    bad = json.loads(run("smoke_test", str(port), "zai-org/GLM-5", "10", stdin="wrong\n"))
    assert bad["thinking"]["error"].startswith("HTTP 401")


def test_tcp_listen_and_connect() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    assert run("tcp_connect", "127.0.0.1", str(port), "1").startswith("error: ")
    listener = subprocess.Popen([sys.executable, *agents.command("tcp_listen", "127.0.0.1", str(port), "5")[1:]])
    try:
        for _ in range(50):
            if run("tcp_connect", "127.0.0.1", str(port), "1") == "ok":
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail("the listener never accepted")
    finally:
        listener.kill()
        listener.wait()


def test_weights_stamp(tmp_path: Path) -> None:
    assert json.loads(run("weights_stamp", str(tmp_path), ".m.json")) == {"present": False}
    (tmp_path / "a.safetensors").write_bytes(b"x" * 3)
    (tmp_path / "b.safetensors").write_bytes(b"x")
    manifest = {"repo": "zai-org/GLM-5", "commit": "c" * 40, "files": [
        {"path": "a.safetensors", "size": 3}, {"path": "b.safetensors", "size": 2}, {"path": "c.safetensors", "size": 1}]}
    (tmp_path / ".m.json").write_text(json.dumps(manifest))
    doc = json.loads(run("weights_stamp", str(tmp_path), ".m.json"))
    assert doc == {"present": True, "repo": "zai-org/GLM-5", "commit": "c" * 40, "files": 3,
                   "missing": ["b.safetensors", "c.safetensors"]}
    (tmp_path / ".m.json").write_text("{not json")
    assert "error" in json.loads(run("weights_stamp", str(tmp_path), ".m.json"))


def test_every_program_is_known_and_standalone() -> None:
    import ast

    for name in agents.PROGRAMS:
        tree = ast.parse(agents.source(name))
        mods = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        mods += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in mods if m.startswith("glm5cluster")], name  # runs without the package
    with pytest.raises(KeyError):
        agents.source("nope")
