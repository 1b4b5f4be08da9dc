"""The agent's command line (see the package docstring for the commands)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from .files import check_paths, cmd_check, cmd_stamp, log, run_workers
from .hub import cmd_list, hub_download
from .peer import cmd_gate, cmd_serve, peer_copy


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "gate":
        return cmd_gate(argv[2])
    if cmd == "serve":
        return cmd_serve(argv[2])
    if cmd in ("fetch", "pull"):
        req = json.loads(Path(argv[2]).read_text())
        root = Path(req["dir"])
        req["_local"], req["_links"] = threading.local(), []
        try:
            check_paths(root, req.get("files"))
            out = run_workers(root, req, cmd, hub_download if cmd == "fetch" else peer_copy)
        except BaseException as e:  # noqa: BLE001 - reported through progress.json and the exit code
            log(f"failed: {e}")
            return 1
        finally:
            for link in req["_links"]:
                link.close()
        log(f"done: {json.dumps(out)}")
        return 0
    req = json.loads(sys.stdin.read() or "{}")
    handlers = {"list": cmd_list, "check": cmd_check, "stamp": cmd_stamp}
    if cmd not in handlers:
        print(f"unknown command {cmd!r}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(handlers[cmd](req)))
    except Exception as e:  # noqa: BLE001 - one line for the controller, never a traceback with secrets
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    return 0
