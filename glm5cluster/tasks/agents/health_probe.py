"""Node 0's readiness: ``/health`` status and ``/v1/models`` ids on 127.0.0.1.

Usage: ``python3 health_probe.py PORT`` with the API key (or an empty line) on stdin.
Prints one line: ``@@glm5cluster:health@@ <code> <json list of model ids>`` (code 0: no answer).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

MARK = "@@glm5cluster:health@@"


def get(port: str, path: str, key: str) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - fixed local http URL
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except Exception as e:  # noqa: BLE001 - any failure is "no answer"
        return 0, str(e)


def probe(port: str, key: str) -> tuple[int, list[str]]:
    code, _ = get(port, "/health", "")
    ids: list[str] = []
    if code == 200:
        status, body = get(port, "/v1/models", key)
        if status == 200:
            try:
                ids = [str(m.get("id")) for m in json.loads(body).get("data", [])]
            except (ValueError, AttributeError):
                ids = []
    return code, ids


def main() -> None:
    key = sys.stdin.readline().strip()
    code, ids = probe(sys.argv[1], key)
    print(f"{MARK} {code} {json.dumps(ids)}")


if __name__ == "__main__":
    main()
