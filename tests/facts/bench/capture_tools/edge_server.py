"""A minimal stand-in for the SGLang server, speaking what the real 0.5.23 clients read; used to
make the ``real_*.txt`` captures (see ``SOURCES.md``), not run by the tests.

- ``POST /generate`` streaming: ``data: {"text": <cumulative>, "meta_info": {"completion_tokens":
  n, "spec_accept_length": ...}}`` then ``data: [DONE]`` (``benchmark/serving.py:692-800``);
  non-streaming (``few_shot_gsm8k`` through ``RuntimeEndpoint``): ``{"text", "meta_info"}``.
- ``GET /v1/models`` (serving.py:2097), ``GET /server_info`` with ``internal_states[0].
  avg_spec_accept_length`` (serving.py:1642-1660), ``GET /get_model_info``
  (``lang/backend/runtime_endpoint.py:43``), ``POST /v1/chat/completions`` (``run_eval``).

Usage: ``python edge_server.py PORT``.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TTFT, TPOT = 0.030, 0.004
KEY = "sk-cap"
ANSWER = "She has 3 apples left. #### 3"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: object) -> None:
        pass

    def _json(self, obj: object, code: int = 200) -> None:
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/v1/models"):
            return self._json({"object": "list", "data": [{"id": "zai-org/GLM-5-FP8", "object": "model"}]})
        if self.path.startswith("/server_info"):
            return self._json({"version": "0.5.23", "internal_states": [{"avg_spec_accept_length": 3.48}]})
        if self.path.startswith("/get_model_info"):
            return self._json({"model_path": "zai-org/GLM-5-FP8", "tokenizer_path": "zai-org/GLM-5-FP8",
                               "is_generation": True})
        if self.path.startswith("/health"):
            return self._json({})
        return self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        if self.path == "/v1/chat/completions":
            if self.headers.get("authorization") != f"Bearer {KEY}":
                return self._json({"error": "unauthorized"}, 401)
            return self._json({"id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": ANSWER}}],
                               "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}})
        if self.path == "/flush_cache":
            return self._json({})
        if self.path != "/generate":
            return self._json({"error": "not found"}, 404)
        out = body.get("sampling_params", {}).get("max_new_tokens", 16)
        if not body.get("stream"):
            ans = {"text": " " + ANSWER, "meta_info": {"completion_tokens": 9, "prompt_tokens": 40,
                                                       "finish_reason": {"type": "stop"}}}
            return self._json([ans] * len(body["text"]) if isinstance(body.get("text"), list) else ans)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def write(data: str) -> None:
            b = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
            self.wfile.flush()

        time.sleep(TTFT)
        text = ""
        for i in range(1, out + 1):
            if i > 1:
                time.sleep(TPOT)
            text += " tok"
            write(json.dumps({"text": text, "meta_info": {"completion_tokens": i, "prompt_tokens": 8,
                                                          "spec_accept_length": 3.48}}))
        write("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return None


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
