"""The router's HTTP API as seen from the router host: one stdlib-python script (run with the
host's ``python3``, talking to ``127.0.0.1:<router port>``) and its pure parser.

The API is sglang-router 0.3.2's (checked against the real wheel on Debian 12):
``GET /liveness`` 200 ``OK``; ``GET /readiness`` 503 ``{"status": "not ready", "reason":
"insufficient healthy workers"}`` until a worker is healthy, then 200 ``{"status": "ready",
"healthy_workers": N, ...}``; ``GET /workers`` -> ``{"workers": [{"id", "url", "model_id",
"is_healthy", "load", ...}], "total", "stats"}``; ``POST /workers {"url", "api_key"?}`` -> 202
``{"status": "accepted", "worker_id", "location"}`` (registration is an async job: the worker
shows in ``GET /workers`` once the router reached its ``/health``); ``DELETE /workers/{id}`` ->
202, and the worker leaves the list at once (0.3.2 has no Draining state and answers ``PATCH``
with 405, so the drain window is node 0's own: see ``engine/procedures/rollout.py``).
``/add_worker``, ``/remove_worker``, ``/list_workers`` are gone (404): never used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from glm5cluster.commands import CommandResult

# stdin: {"port": P, "key": "..."|null, "ops": [[op, ...args], ...]}; prints one JSON line:
# {"ok": bool, "error": str, "done": [str], "state": {...}}. Ops, in order:
#   ["live", secs]              wait until /liveness answers
#   ["remove", [url...], secs]  DELETE the workers with these URLs, wait until they left the list
#   ["add", [url...]]           POST /workers for each URL not listed yet
#   ["healthy", [url...], secs] wait until every URL is listed with is_healthy true
ROUTER_PY = r"""
import json, sys, time, urllib.request as u, urllib.error as ue
req = json.load(sys.stdin); base = "http://127.0.0.1:%d" % req["port"]; key = req.get("key")
def call(method, path, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    r = u.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with u.urlopen(r, timeout=timeout) as f: return f.status, f.read().decode(errors="replace")
    except ue.HTTPError as e: return e.code, e.read().decode(errors="replace")
def state():
    out = {"live": False, "ready": None, "readiness": "", "workers": [], "error": ""}
    try:
        out["live"] = call("GET", "/liveness", timeout=5)[0] == 200
        code, body = call("GET", "/readiness", timeout=5); out["ready"] = code == 200; out["readiness"] = body[:300]
        code, body = call("GET", "/workers", timeout=10)
        out["workers"] = json.loads(body).get("workers", []) if code == 200 else []
        if code != 200: out["error"] = "GET /workers: HTTP %d %s" % (code, body[:200])
    except Exception as e:
        out["error"] = "router not answering on %s: %s" % (base, e)
    return out
def by_url(st): return {w.get("url"): w for w in st["workers"]}
res = {"ok": True, "error": "", "done": []}
for op in req["ops"]:
    name = op[0]
    if name == "live":
        end = time.monotonic() + op[1]
        while not state()["live"] and time.monotonic() < end: time.sleep(0.5)
        if not state()["live"]: res.update(ok=False, error="router not answering on %s after %ss" % (base, op[1])); break
    elif name == "remove":
        for url in op[1]:
            w = by_url(state()).get(url)
            if w:
                code, body = call("DELETE", "/workers/" + w["id"])
                res["done"].append("DELETE %s (%s): HTTP %d" % (url, w["id"], code))
        end = time.monotonic() + op[2]
        while set(op[1]) & set(by_url(state())) and time.monotonic() < end: time.sleep(0.3)
        left = set(op[1]) & set(by_url(state()))
        if left: res.update(ok=False, error="still registered after %ss: %s" % (op[2], ", ".join(sorted(left)))); break
    elif name == "add":
        have = by_url(state())
        for url in op[1]:
            if url in have: continue
            body = {"url": url}
            if key: body["api_key"] = key
            code, text = call("POST", "/workers", body)
            res["done"].append("POST /workers %s: HTTP %d" % (url, code))
            if code not in (200, 201, 202, 409):
                res.update(ok=False, error="POST /workers %s: HTTP %d %s" % (url, code, text[:200])); break
        if not res["ok"]: break
    elif name == "healthy":
        end = time.monotonic() + op[2]
        while time.monotonic() < end:
            have = by_url(state())
            if all(have.get(x, {}).get("is_healthy") for x in op[1]): break
            time.sleep(0.5)
        have = by_url(state())
        bad = [x for x in op[1] if not have.get(x, {}).get("is_healthy")]
        if bad:
            res.update(ok=False, error="not healthy in the router after %ss: %s" % (op[2], ", ".join(
                x + (" (listed, is_healthy false)" if x in have else " (not registered: the router could not reach its /health)")
                for x in bad))); break
res["state"] = state()
print(json.dumps(res))
"""


@dataclass(frozen=True)
class Worker:
    id: str
    url: str
    healthy: bool
    load: int | None
    model: str


@dataclass(frozen=True)
class RouterState:
    live: bool
    ready: bool | None
    readiness: str  # the /readiness body (why not ready)
    workers: tuple[Worker, ...]
    error: str = ""

    def worker(self, url: str) -> Worker | None:
        return next((w for w in self.workers if w.url == url), None)


@dataclass(frozen=True)
class RouterReply:
    ok: bool
    error: str
    done: tuple[str, ...]
    state: RouterState


def parse_state(doc: dict[str, object]) -> RouterState:
    workers = []
    raw = doc.get("workers")
    for w in raw if isinstance(raw, list) else []:
        if not isinstance(w, dict):
            continue
        load = w.get("load")
        workers.append(Worker(str(w.get("id", "")), str(w.get("url", "")), bool(w.get("is_healthy")),
                              int(load) if isinstance(load, int) else None, str(w.get("model_id") or "")))
    ready = doc.get("ready")
    return RouterState(bool(doc.get("live")), ready if isinstance(ready, bool) else None,
                       str(doc.get("readiness") or ""), tuple(workers), str(doc.get("error") or ""))


def parse_reply(result: CommandResult) -> RouterReply:
    """The script's JSON line; a script that did not run is a reply with ``ok`` false."""
    try:
        doc = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = result.tail(3) if hasattr(result, "tail") else result.stderr[-300:]
        empty = RouterState(False, None, "", (), f"router API script did not run (exit {result.exit_code}): {tail}")
        return RouterReply(False, empty.error, (), empty)
    return RouterReply(bool(doc.get("ok")), str(doc.get("error") or ""), tuple(doc.get("done") or ()),
                       parse_state(doc.get("state") or {}))
