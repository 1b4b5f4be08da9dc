"""A stand-in for sglang-router 0.3.2's HTTP API at the true edge, built from the captures in
this directory (SOURCES.md): the same routes, status codes and bodies. A worker URL containing
``dead`` never turns up in ``GET /workers`` (the real router keeps retrying its /health)."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent


def chat_answer(body: dict[str, Any]) -> dict[str, Any]:
    """What the router relays from a GLM-5 node 0 (the lab simulator's answer shapes)."""
    msg: dict[str, Any] = {"role": "assistant", "content": "391", "reasoning_content": None, "tool_calls": None}
    if body.get("tools"):
        msg["tool_calls"] = [{"id": "call_0", "type": "function",
                              "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]
    elif (body.get("chat_template_kwargs") or {}).get("enable_thinking", True):
        msg["reasoning_content"] = "17 * 23 = 391"
    return {"object": "chat.completion", "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}


class FakeRouter:
    def __init__(self) -> None:
        self.workers: dict[str, dict[str, Any]] = {}
        self.open_circuit_requests = 0  # chat requests answered 503 "all circuits open" first
        self.calls: list[tuple[str, str, Any]] = []
        template = json.loads((DATA / "workers_one-healthy.json").read_text())["workers"][0]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def reply(self, code: int, doc: Any) -> None:
                body = (doc if isinstance(doc, str) else json.dumps(doc)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                fake.calls.append(("GET", self.path, None))
                if self.path == "/liveness":
                    return self.reply(200, "OK")
                if self.path == "/readiness":
                    healthy = sum(1 for w in fake.workers.values() if w["is_healthy"])
                    if not healthy:
                        return self.reply(503, json.loads((DATA / "readiness_no-workers.json").read_text()))
                    return self.reply(200, {"status": "ready", "healthy_workers": healthy,
                                            "total_workers": len(fake.workers)})
                if self.path == "/workers":
                    ws = list(fake.workers.values())
                    return self.reply(200, {"workers": ws, "total": len(ws), "stats": {
                        "prefill_count": 0, "decode_count": 0, "regular_count": len(ws)}})
                return self.reply(404, "")

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.calls.append(("POST", self.path, body))
                if self.path == "/v1/chat/completions":
                    if fake.open_circuit_requests > 0:
                        fake.open_circuit_requests -= 1
                        return self.reply(503, json.loads((DATA / "chat_503_circuits-open.json").read_text()))
                    return self.reply(200 if fake.workers else 503, chat_answer(body))
                if self.path != "/workers":
                    return self.reply(404, "")
                wid = str(uuid.uuid5(uuid.NAMESPACE_URL, body["url"]))
                if "dead" not in body["url"]:
                    fake.workers[wid] = dict(template, id=wid, url=body["url"])
                doc = json.loads((DATA / "post-workers_202.json").read_text())
                return self.reply(202, dict(doc, worker_id=wid, url=body["url"], location=f"/workers/{wid}"))

            def do_DELETE(self) -> None:  # noqa: N802
                fake.calls.append(("DELETE", self.path, None))
                wid = self.path.rsplit("/", 1)[-1]
                fake.workers.pop(wid, None)
                return self.reply(202, {"status": "accepted", "worker_id": wid,
                                        "message": "Worker removal queued for background processing"})

            def do_PATCH(self) -> None:  # noqa: N802
                return self.reply(405, "")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
