"""A bounded closed-loop load: ``clients`` threads, each sending one chat completion after the
other (alternately non-streaming and streaming) to ``url``, each request recorded with its
phase, latency and error. Used by ``bench_rollout.py`` and the rollout lab test."""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


@dataclass
class Sample:
    phase: str
    start: float
    seconds: float
    stream: bool
    error: str = ""


@dataclass
class Load:
    url: str  # http://router:port
    model: str
    clients: int = 8
    max_tokens: int = 16
    timeout: float = 120.0
    phase: str = "before"
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def one(self, stream: bool) -> str:
        body = {"model": self.model, "max_tokens": self.max_tokens, "stream": stream,
                "messages": [{"role": "user", "content": "Say hello in five words."}],
                "chat_template_kwargs": {"enable_thinking": False}}
        req = urllib.request.Request(self.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}: {e.read()[:200]!r}"
        except Exception as e:  # noqa: BLE001 - every failure counts
            return f"{type(e).__name__}: {e}"
        if stream:
            if "data: [DONE]" not in raw:
                return f"stream ended without [DONE]: {raw[-200:]!r}"
            return ""
        try:
            doc = json.loads(raw)
            return "" if doc["choices"][0]["message"]["content"] else "empty content"
        except (ValueError, KeyError, IndexError) as e:
            return f"bad answer: {e}: {raw[:200]!r}"

    def _client(self, k: int) -> None:
        n = k
        while not self._stop.is_set():
            stream = n % 2 == 1
            n += 1
            phase, t0 = self.phase, time.monotonic()
            err = self.one(stream)
            with self._lock:
                self.samples.append(Sample(phase, t0, time.monotonic() - t0, stream, err))

    def start(self) -> Load:
        for k in range(self.clients):
            t = threading.Thread(target=self._client, args=(k,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def failures(self, phase: str | None = None) -> list[Sample]:
        return [s for s in self.samples if s.error and (phase is None or s.phase == phase)]

    def stats(self, phase: str) -> dict[str, float | int]:
        xs = sorted(s.seconds for s in self.samples if s.phase == phase)
        if not xs:
            return {"requests": 0, "failed": 0, "p50_ms": 0.0, "p99_ms": 0.0}
        p99 = xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
        return {"requests": len(xs), "failed": len(self.failures(phase)),
                "p50_ms": round(statistics.median(xs) * 1000, 1), "p99_ms": round(p99 * 1000, 1)}
