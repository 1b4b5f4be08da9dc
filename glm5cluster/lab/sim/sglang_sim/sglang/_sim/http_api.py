"""HTTP: the node-0 API server and the dummy health server of ranks >= 1."""

import email.utils
import json
import shlex
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sglang._sim import chat
from sglang.version import __version__

NOT_FOUND = {"detail": "Not Found"}  # 22 bytes, as uvicorn/FastAPI answers


class State:
    def __init__(self, args, config, argv):
        self.args = args
        self.config = config
        self.argv = argv
        self.phase = "starting"  # starting -> ready -> draining
        self.created = int(time.time())
        self.inflight = 0
        self.lock = threading.Lock()
        self.requests = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0

    @property
    def model_id(self):
        return self.args.served_model_name or self.args.model_path


class _Base(BaseHTTPRequestHandler):
    server_version = "uvicorn"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def _access_log(self, code):
        phrase = self.responses.get(code, ("",))[0]
        sys.stderr.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] INFO:     {self.client_address[0]}:"
                         f"{self.client_address[1]} - \"{self.requestline}\" {code} {phrase}\n")
        sys.stderr.flush()

    def _head(self, code):
        self.send_response_only(code)
        self.send_header("date", email.utils.formatdate(usegmt=True))
        self.send_header("server", "uvicorn")
        self._access_log(code)

    def _start(self, code, ctype=None, length=0):
        self._head(code)
        self.send_header("content-length", str(length))
        if ctype:
            self.send_header("content-type", ctype)
        self.end_headers()

    def reply(self, code, body=None, ctype="application/json"):
        if body is None:
            data = b""
            ctype = None
        elif isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
        self._start(code, ctype, len(data))
        if self.command != "HEAD":
            self.wfile.write(data)

    def body_json(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None


class DummyHandler(_Base):
    """Ranks >= 1: /health, /health_generate, /ping answer 200 regardless; the rest 404."""

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/health", "/health_generate", "/ping"):
            self.reply(200)
        else:
            self.reply(404, NOT_FOUND)

    do_HEAD = do_GET
    do_POST = do_GET


class ApiHandler(_Base):
    state: State = None  # set on the subclass made by serve_api

    OPEN = ("/health", "/health_generate", "/ready", "/metrics")

    def _authorized(self, path):
        key = self.state.args.api_key
        if not key or path.startswith("/health") or path.startswith("/metrics") or path == "/ready":
            return True
        return self.headers.get("Authorization") == "Bearer " + key

    def _route(self, method):
        path = self.path.split("?", 1)[0]
        st = self.state
        if not self._authorized(path):
            return self.reply(401, {"error": "Unauthorized"})
        if path in ("/health", "/health_generate"):
            return self.reply(200 if st.phase == "ready" else 503)
        if path == "/ready":
            return self.reply(200 if st.phase == "ready" else 503)
        if path in ("/model_info", "/get_model_info") and method == "GET":
            return self.reply(200, self._model_info())
        if path in ("/server_info", "/get_server_info") and method == "GET":
            return self.reply(200, self._server_info())
        if path == "/v1/models" and method == "GET":
            return self.reply(200, self._models())
        if path == "/metrics" and method == "GET":
            if not st.args.enable_metrics:
                return self.reply(404, NOT_FOUND)
            return self.reply(200, self._metrics(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/v1/chat/completions" and method == "POST":
            return self._chat()
        if path == "/flush_cache" and method in ("GET", "POST"):
            return self.reply(200, "Cache flushed.\nPlease check backend logs for more details. "
                                   "(When there are running or waiting requests, the operation will not "
                                   "be performed.)\n", "text/plain")
        return self.reply(404, NOT_FOUND)

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_HEAD(self):
        self._route("GET")

    def _model_info(self):
        st = self.state
        return {"model_path": st.args.model_path, "tokenizer_path": st.args.tokenizer_path,
                "is_generation": True, "preferred_sampling_params": st.args.preferred_sampling_params,
                "weight_version": st.args.weight_version or "default",
                "has_image_understanding": False, "has_audio_understanding": False,
                "model_type": st.config.get("model_type"),
                "architectures": st.config.get("architectures")}

    def _server_info(self):
        st = self.state
        info = {k: v for k, v in st.args.values.items()}
        info.update({
            "status": "ready" if st.phase == "ready" else st.phase,
            "max_total_num_tokens": 1021440, "max_req_input_len": self._max_len() - 5,
            "internal_states": [{"last_gen_throughput": 0.0, "memory_usage": {
                "weight": 92.61, "kvcache": 28.07, "token_capacity": 1021440, "graph": 1.52},
                "effective_max_running_requests_per_dp": 1024}],
            "version": __version__,
            "launch_command": shlex.join(["python3", "-m", "sglang.launch_server"] + st.argv),
        })
        return info

    def _max_len(self):
        return int(self.state.args.context_length or self.state.config.get("max_position_embeddings", 202752))

    def _models(self):
        st = self.state
        return {"object": "list", "data": [{"id": st.model_id, "object": "model", "created": st.created,
                                            "owned_by": "sglang", "root": st.model_id, "parent": None,
                                            "max_model_len": self._max_len()}]}

    def _metrics(self):
        st = self.state
        label = f'model_name="{st.model_id}"'
        lines = [
            "# HELP sglang:num_running_reqs The number of running requests.",
            "# TYPE sglang:num_running_reqs gauge", f"sglang:num_running_reqs{{{label}}} {float(st.inflight)}",
            "# HELP sglang:num_queue_reqs The number of requests in the waiting queue.",
            "# TYPE sglang:num_queue_reqs gauge", f"sglang:num_queue_reqs{{{label}}} 0.0",
            "# HELP sglang:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE sglang:prompt_tokens_total counter",
            f"sglang:prompt_tokens_total{{{label}}} {float(st.prompt_tokens)}",
            "# HELP sglang:generation_tokens_total Number of generation tokens processed.",
            "# TYPE sglang:generation_tokens_total counter",
            f"sglang:generation_tokens_total{{{label}}} {float(st.generation_tokens)}",
            "# HELP sglang:num_requests_total The number of processed requests.",
            "# TYPE sglang:num_requests_total counter", f"sglang:num_requests_total{{{label}}} {float(st.requests)}",
        ]
        return "\n".join(lines) + "\n"

    def _chat(self):
        st = self.state
        body = self.body_json()
        if not isinstance(body, dict) or not body.get("messages"):
            return self.reply(400, {"object": "error", "message": "messages: Field required",
                                    "type": "BadRequestError", "param": None, "code": 400})
        if st.phase != "ready":
            return self.reply(503, {"object": "error", "message": "The server is not ready.",
                                    "type": "ServiceUnavailable", "param": None, "code": 503})
        with st.lock:
            st.inflight += 1
        try:
            if body.get("stream"):
                return self._stream(body)
            resp = chat.completion(body, st.args, st.model_id)
            with st.lock:
                st.requests += 1
                st.prompt_tokens += resp["usage"]["prompt_tokens"]
                st.generation_tokens += resp["usage"]["completion_tokens"]
            return self.reply(200, resp)
        finally:
            with st.lock:
                st.inflight -= 1

    def _stream(self, body):
        self._head(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def write(data):
            payload = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")

        try:
            for c in chat.stream_chunks(body, self.state.args, self.state.model_id):
                write(json.dumps(c, separators=(",", ":")))
            write("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        with self.state.lock:
            self.state.requests += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler):
        import socket

        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, handler)


def serve(host, port, handler):
    srv = _Server((host, port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def serve_api(host, port, state):
    handler = type("BoundApiHandler", (ApiHandler,), {"state": state})
    return serve(host, port, handler)


def serve_dummy(host, port):
    return serve(host, port, DummyHandler)
