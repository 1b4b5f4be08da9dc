"""Helpers for the simulator tests: run the simulated SGLang as real processes on localhost."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from glm5cluster.lab.sim.hub.repo import generate_repo

SIM_SRC = Path(__file__).resolve().parents[3] / "glm5cluster" / "lab" / "sim" / "sglang_sim"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sim_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SGLANG_SIM_")}
    env["PYTHONPATH"] = str(SIM_SRC)
    env["SGLANG_SIM_SKIP_GPU_CHECK"] = "1"
    env["SGLANG_SIM_LOAD_SECONDS"] = "0.5"
    env["SGLANG_SIM_WARMUP_SECONDS"] = "0.5"
    env["SGLANG_SIM_RENDEZVOUS_TIMEOUT"] = "20"
    env["SGLANG_SIM_DRAIN_POLL_SECONDS"] = "0.2"
    env.update(extra)
    return env


class Rank:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = open(log, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sglang.launch_server", *argv],
            env=env, stdout=self._fh, stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_exit(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def wait_for(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None and needle not in self.text():
                raise AssertionError(f"exited {self.proc.returncode} before {needle!r}:\n{self.text()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {needle!r}:\n{self.text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._fh.close()


def http(url: str, body: dict | None = None, key: str | None = None,
         method: str | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models") / "GLM-5-FP8"
    generate_repo(str(d), shards=3, shard_bytes=256 * 1024, repo_id="zai-org/GLM-5-FP8")
    return d


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator:
    ranks: list[Rank] = []

    def launch(argv: list[str], name: str = "rank", **env: str) -> Rank:
        rank = Rank(argv, sim_env(**env), tmp_path / f"{name}-{len(ranks)}.log")
        ranks.append(rank)
        return rank

    yield launch
    for r in ranks:
        r.stop()
