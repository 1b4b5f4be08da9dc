"""HTTP: the node-0 API server (entrypoints/http_server.py of 0.5.23) and the dummy health
server of ranks >= 1 (utils/common.py:3624 launch_dummy_health_check_server)."""

import email.utils
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sglang._sim import bench, chat, endpoints
from sglang._sim.slog import emit

NOT_FOUND = {"detail": "Not Found"}  # starlette's 404
NOT_ALLOWED = {"detail": "Method Not Allowed"}  # starlette's 405
TEXT_METRICS = "text/plain; version=0.0.4; charset=utf-8"


class State:
    def __init__(self, args, config, argv, tps=(0,), request_seconds=0.0):
        self.args = args
        self.config = config
        self.argv = argv
        self.tps = tps
        self.request_seconds = request_seconds
        self.phase = "starting"  # ServerStatus.Starting -> Up ("ready")
        self.gracefully_exit = False  # set by the SIGTERM watchdog (tokenizer_manager.py:4070)
        self.created = int(time.time())
        self.startup_time = time.time()
        self.lock = threading.Lock()
        self.rids = {}  # in-flight request id -> start time (rid_to_state)
        self.requests = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0

    @property
    def model_id(self):
        return self.args.served_model_name or self.args.model_path

    def healthy(self):
        """tokenizer_manager.py:728 is_healthy()."""
        return not self.gracefully_exit and self.phase == "ready"

    def running(self):
        with self.lock:
            return len(self.rids)

    def inflight_rids(self):
        with self.lock:
            return list(self.rids)

    def begin(self):
        rid = uuid.uuid4().hex
        with self.lock:
            self.rids[rid] = time.time()
        return rid

    def end(self, rid, prompt=0, completion=0):
        with self.lock:
            self.rids.pop(rid, None)
            self.requests += 1
            self.prompt_tokens += prompt
            self.generation_tokens += completion


def host_port(host, port):
    """NetworkAddress.to_host_port_str: brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def authorized(method, path, header, api_key):
    """utils/auth.py:80 decide_request_auth for NORMAL endpoints: probes always pass."""
    if method == "OPTIONS" or path.startswith(("/health", "/ready", "/metrics")):
        return True
    if not api_key:
        return True
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and token == api_key


class _Base(BaseHTTPRequestHandler):
    server_version = "uvicorn"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    ROUTES = {}  # path -> allowed methods

    def log_message(self, fmt, *a):
        pass

    def _head(self, code):
        self.send_response_only(code)
        self.send_header("date", email.utils.formatdate(usegmt=True))
        self.send_header("server", "uvicorn")
        phrase = self.responses.get(code, ("",))[0]
        emit("uvicorn_access", client=f"{self.client_address[0]}:{self.client_address[1]}", request_line=self.requestline,
             status=f"{code} {phrase}")

    def reply(self, code, body=None, ctype="application/json"):
        if body is None:
            data, ctype = b"", None
        elif isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
        self._head(code)
        self.send_header("content-length", str(len(data)))
        if ctype:
            self.send_header("content-type", ctype)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def body_json(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def dispatch(self, method):
        url = urlsplit(self.path)
        path = url.path
        allowed = self.route_methods(path)
        if allowed is None:
            return self.reply(404, NOT_FOUND)
        if method not in allowed and not (method == "HEAD" and "GET" in allowed):
            return self.reply(405, NOT_ALLOWED)
        return self.handle_route("GET" if method == "HEAD" else method, path, parse_qs(url.query))

    def route_methods(self, path):
        return self.ROUTES.get(path)

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")


class DummyHandler(_Base):
    """Ranks >= 1: /ping, /health, /health_generate answer 200 regardless; /metrics with
    --enable-metrics (add_prometheus_middleware); the rest 404."""

    enable_metrics = False
    ROUTES = {"/ping": ("GET",), "/health": ("GET",), "/health_generate": ("GET",)}

    def route_methods(self, path):
        if self.enable_metrics and path.startswith("/metrics"):
            return ("GET",)
        return self.ROUTES.get(path)

    def handle_route(self, method, path, query):
        if path.startswith("/metrics"):
            return self.reply(200, "", TEXT_METRICS)
        return self.reply(200)


class ApiHandler(_Base):
    state = None  # set on the subclass made by serve_api
    ROUTES = {
        "/ready": ("GET",), "/health": ("GET",), "/health_generate": ("GET",), "/ping": ("GET",),
        "/model_info": ("GET",), "/get_model_info": ("GET",), "/server_info": ("GET",),
        "/get_server_info": ("GET",), "/v1/models": ("GET",), "/v1/loads": ("GET",),
        "/v1/chat/completions": ("POST",), "/flush_cache": ("GET", "POST"),
        "/generate": ("POST", "PUT"),  # http_server.py:928-933
    }

    def route_methods(self, path):
        if path.startswith("/v1/models/"):
            return ("GET",)
        if path.startswith("/metrics") and self.state.args.enable_metrics:
            return ("GET",)
        return self.ROUTES.get(path)

    def dispatch(self, method):
        path = urlsplit(self.path).path
        if not authorized(method, path, self.headers.get("Authorization"), self.state.args.api_key):
            return self.reply(401, {"error": "Unauthorized"})
        return super().dispatch(method)

    def handle_route(self, method, path, query):
        st = self.state
        if path in ("/health", "/health_generate"):  # http_server.py:721
            if st.gracefully_exit:
                emit("health_during_shutdown")
                return self.reply(503)
            return self.reply(200 if st.phase == "ready" else 503)
        if path in ("/ready", "/ping"):  # http_server.py:714, 2190
            return self.reply(200 if st.healthy() else 503)
        if path in ("/get_model_info", "/get_server_info"):
            emit("deprecated_" + path[1:])
            path = path.replace("/get_", "/")
        if path == "/model_info":
            return self.reply(200, endpoints.model_info(st))
        if path == "/server_info":
            return self.reply(200, endpoints.server_info(st))
        if path == "/v1/models":
            return self.reply(200, endpoints.models(st))
        if path.startswith("/v1/models/"):
            name = path[len("/v1/models/"):]
            if name != st.model_id:
                return self.reply(404, endpoints.model_not_found(name))
            return self.reply(200, endpoints.model_card(st, name))
        if path == "/v1/loads":
            first = {k: v[0] for k, v in query.items()}
            try:
                dp = int(first["dp_rank"]) if "dp_rank" in first else None
            except ValueError:
                return self.reply(422, {"detail": [{"type": "int_parsing", "loc": ["query", "dp_rank"],
                                                    "msg": "Input should be a valid integer, unable to parse "
                                                           "string as an integer", "input": first["dp_rank"]}]})
            code, body, ctype = endpoints.loads(st, first.get("include"), first.get("format"), dp)
            return self.reply(code, body, ctype)
        if path.startswith("/metrics"):
            return self.reply(200, endpoints.metrics(st), TEXT_METRICS)
        if path == "/v1/chat/completions":
            return self._chat()
        if path == "/generate":
            return self._generate()
        if path == "/flush_cache":
            return self.reply(200, "Cache flushed.\nPlease check backend logs for more details. (When there "
                                   "are running or waiting requests, the operation will not be performed.)\n",
                              "text/plain")
        return self.reply(404, NOT_FOUND)

    def _generate(self):
        """http_server.py:933 generate_request: ``text`` (or a list of them) or ``input_ids``;
        streamed as ``data: {"text": <cumulative>, "meta_info": {...}}`` chunks then ``data: [DONE]``
        (http_server.py:950-974), else one object (a list for a batch)."""
        st = self.state
        body = self.body_json()
        if not isinstance(body, dict) or (body.get("text") is None and body.get("input_ids") is None):
            return self.reply(400, {"error": {"message": "Either text or input_ids should be provided.",
                                              "type": "invalid_request_error", "code": 400}})
        src = body.get("text") if body.get("text") is not None else body.get("input_ids")
        batch = isinstance(src, list) and (body.get("text") is not None or (src and isinstance(src[0], list)))
        items = src if batch else [src]
        sp = body.get("sampling_params") or {}
        stop = sp.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        outs = []
        for item in items:
            prompt = item if isinstance(item, str) else ""
            ptoks = bench.count_tokens(prompt) if isinstance(item, str) else len(item or [])
            words, finish = bench.completion_words(prompt, sp.get("max_new_tokens"), bool(sp.get("ignore_eos")),
                                                   stop)
            outs.append((ptoks, words, finish))
        spec = bool(st.args.speculative_algorithm)
        knobs = bench.knobs()
        rid = st.begin()
        served = [0, 0]  # prompt, completion tokens
        try:
            if body.get("stream") and not batch:
                return self._generate_stream(rid, outs[0], spec, knobs, served)
            started = time.time()
            longest = max(len(w) for _, w, _ in outs)
            time.sleep(knobs.ttft + knobs.tpot * max(0, longest - 1))
            res = [{"text": "".join(w), "meta_info": self._meta(rid, p, len(w), f, spec, knobs, time.time() - started)}
                   for p, w, f in outs]
            served[:] = [sum(p for p, _, _ in outs), sum(len(w) for _, w, _ in outs)]
            return self.reply(200, res if batch else res[0])
        finally:
            st.end(rid, *served)

    @staticmethod
    def _meta(rid, prompt, n, finish, spec, knobs, e2e, done=True):
        """The meta_info fields the clients read (serving.py:747-800, runtime_endpoint.py:190), as
        the server fills them (managers/tokenizer_manager.py: weight_version 2511, cached_tokens
        2557, e2e_latency 2753, spec_accept_length / spec_verify_ct 3166-3172)."""
        reason = None
        if done:
            reason = {"type": "length", "length": n} if finish == "length" else {"type": "stop", "matched": None}
        meta = {"id": rid, "finish_reason": reason, "prompt_tokens": prompt, "weight_version": "default",
                "completion_tokens": n, "cached_tokens": 0, "e2e_latency": round(e2e, 4)}
        if spec:
            meta["spec_accept_length"] = knobs.accept_length
            meta["spec_verify_ct"] = max(1, round(n / knobs.accept_length))
        return meta

    def _chunk(self, data):
        payload = b"data: " + data + b"\n\n"
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def _generate_stream(self, rid, out, spec, knobs, served):
        prompt, words, finish = out
        self._head(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        started = time.time()
        text = ""
        try:
            time.sleep(knobs.ttft)
            for i, w in enumerate(words):
                if i:
                    time.sleep(knobs.tpot)
                text += w
                meta = self._meta(rid, prompt, i + 1, finish, spec, knobs, time.time() - started, i + 1 == len(words))
                self._chunk(json.dumps({"text": text, "meta_info": meta}, separators=(",", ":")).encode())
            self._chunk(b"[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            served[:] = [prompt, len(words)]
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _chat(self):
        st = self.state
        body = self.body_json()
        if not isinstance(body, dict) or not body.get("messages"):
            return self.reply(400, {"object": "error", "message": "messages: Field required",
                                    "type": "BadRequestError", "param": None, "code": 400})
        rid = st.begin()  # accepted while starting or draining too, as the real tokenizer manager does
        prompt = completion = 0
        try:
            if st.request_seconds:
                time.sleep(st.request_seconds)
            if body.get("stream"):
                return self._stream(body)
            resp = chat.completion(body, st.args, st.model_id)
            knobs = bench.knobs()
            if knobs.present:
                time.sleep(knobs.ttft + knobs.tpot * max(0, resp["usage"]["completion_tokens"] - 1))
            prompt, completion = resp["usage"]["prompt_tokens"], resp["usage"]["completion_tokens"]
            return self.reply(200, resp)
        finally:
            st.end(rid, prompt, completion)

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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # the listen backlog of the real server (sglang/srt/entrypoints/http_server.py:2768 backlog=2048;
    # socketserver's default is 5, which resets connections under load): the
    # benchmark clients open up to 128 connections at once (few_shot_gsm8k.py:160 --parallel 128)
    request_queue_size = 2048

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
    return serve(host, port, type("BoundApiHandler", (ApiHandler,), {"state": state}))


def serve_dummy(host, port, enable_metrics=False):
    return serve(host, port, type("BoundDummyHandler", (DummyHandler,), {"enable_metrics": bool(enable_metrics)}))
