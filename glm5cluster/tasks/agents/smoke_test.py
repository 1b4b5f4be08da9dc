"""Three real chat completions against node 0 (127.0.0.1): thinking, instruct, tool call.

Usage: ``python3 smoke_test.py PORT MODEL TIMEOUT`` with the API key (or an empty line) on
stdin. Prints one JSON line ``{"thinking": {...}, "instruct": {...}, "tool": {...}}``; each
answer is ``{"reasoning", "content", "tools", "seconds"}`` or ``{"error"}``.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

ASK = [{"role": "user", "content": "What is 17 * 23? Answer briefly."}]
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def chat(port: str, model: str, key: str, timeout: float, body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body, model=model, max_tokens=64)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if key:
        req.add_header("Authorization", "Bearer " + key)
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as f:  # noqa: S310 - fixed local http URL
            doc = json.loads(f.read().decode())
    except urllib.error.HTTPError as e:
        return {"error": f"HTTP {e.code}: {e.read().decode()[:200]}"}
    except Exception as e:  # noqa: BLE001 - reported as the request's error
        return {"error": str(e)}
    msg = (doc.get("choices") or [{}])[0].get("message") or {}
    return {"reasoning": bool(msg.get("reasoning_content")), "content": bool(msg.get("content")),
            "tools": [c.get("function", {}).get("name") for c in msg.get("tool_calls") or []],
            "seconds": round(time.monotonic() - t, 2)}


def run(port: str, model: str, key: str, timeout: float) -> dict[str, dict[str, Any]]:
    return {
        "thinking": chat(port, model, key, timeout, {"messages": ASK}),
        "instruct": chat(port, model, key, timeout,
                         {"messages": ASK, "chat_template_kwargs": {"enable_thinking": False}}),
        "tool": chat(port, model, key, timeout,
                     {"messages": [{"role": "user", "content": "What is the weather in Paris?"}], "tools": [TOOL]}),
    }


def main() -> None:
    key = sys.stdin.readline().strip()
    print(json.dumps(run(sys.argv[1], sys.argv[2], key, float(sys.argv[3]))))


if __name__ == "__main__":
    main()
