"""The mirror host's services, run inside the mirror container as PID 1 (stdlib only).

    python3 serve.py --apt-port P --pypi-port P --registry-port P --hub-port P
                     --hub-shards N --hub-shard-mb M --hub-rate-mbps R [--hub-token-file F]

* apt and pypi: static HTTP servers over ``/srv/mirror/apt`` and ``/srv/mirror/pypi`` (threads);
* registry: ``docker-registry serve`` over ``/srv/mirror/registry`` (read-only storage);
* hub: ``python3 -m glm5cluster.lab.sim.hub.server`` over ``/srv/mirror/hub`` (read-only data).
Child processes are restarted when they exit (with a back-off); logs go to
``/var/log/glm5lab-mirror/<service>.log``. SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

SRV = "/srv/mirror"
LOGS = "/var/log/glm5lab-mirror"
SRC = "/opt/glm5cluster"


class QuietHandler(SimpleHTTPRequestHandler):
    log_file = None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        if self.log_file is not None:
            self.log_file.write(f"{self.client_address[0]} {format % args}\n")
            self.log_file.flush()


def http_service(name: str, root: str, port: int) -> None:
    log = open(os.path.join(LOGS, f"{name}.log"), "a")  # noqa: SIM115 - lives as long as the process
    handler = type(f"{name}Handler", (QuietHandler,), {"log_file": log})
    srv = ThreadingHTTPServer(("0.0.0.0", port), functools.partial(handler, directory=root))  # noqa: S104
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, name=name, daemon=True).start()


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.backoff = 0.5

    def start(self) -> None:
        log = open(os.path.join(LOGS, f"{self.name}.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, env=self.env)  # noqa: S603
        self.started = time.monotonic()

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            if time.monotonic() - self.started > 30:
                self.backoff = 0.5
            time.sleep(self.backoff)
            self.backoff = min(self.backoff * 2, 10.0)
            self.start()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="glm5lab-mirror")
    for name in ("apt-port", "pypi-port", "registry-port", "hub-port", "hub-shards"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--hub-shard-mb", type=float, required=True)
    p.add_argument("--hub-rate-mbps", type=float, default=0.0)
    p.add_argument("--hub-conn-rate-mbps", type=float, default=0.0)
    p.add_argument("--hub-token-file", default="")
    a = p.parse_args(argv)
    os.makedirs(LOGS, exist_ok=True)
    http_service("apt", f"{SRV}/apt", a.apt_port)
    http_service("pypi", f"{SRV}/pypi", a.pypi_port)
    reg_cfg = "/etc/glm5lab-mirror/registry.yml"
    os.makedirs(os.path.dirname(reg_cfg), exist_ok=True)
    with open(reg_cfg, "w") as fh:
        json.dump({
            "version": 0.1, "log": {"level": "info"},
            "storage": {"filesystem": {"rootdirectory": f"{SRV}/registry/storage"}, "delete": {"enabled": False},
                        "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": True}}},
            "http": {"addr": f":{a.registry_port}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }, fh)
    hub_argv = [sys.executable, "-m", "glm5cluster.lab.sim.hub.server", "--data", f"{SRV}/hub",
                "--port", str(a.hub_port), "--shards", str(a.hub_shards), "--shard-mb", str(a.hub_shard_mb),
                "--rate-mbps", str(a.hub_rate_mbps), "--conn-rate-mbps", str(a.hub_conn_rate_mbps),
                "--log", f"{LOGS}/hub-requests.log"]
    if a.hub_token_file and os.path.exists(a.hub_token_file):
        hub_argv += ["--token-file", a.hub_token_file]
    env = dict(os.environ)
    children = [
        Child("registry", ["/usr/local/bin/docker-registry", "serve", reg_cfg], env),
        Child("hub", hub_argv, {**env, "PYTHONPATH": SRC}),
    ]
    for c in children:
        c.start()
    stop = threading.Event()

    def on_term(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not stop.wait(1.0):
        for c in children:
            c.check()
    for c in children:
        if c.proc is not None:
            c.proc.terminate()
    for c in children:
        if c.proc is not None:
            c.proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
