"""One connection per host per run, and a fan-out that returns a value for every host.

    with ConnectionPool(nodes, ConnectOptions(accept_new_host_keys=False)) as pool:
        results = fan_out([n.name for n in nodes], lambda h: pool.get(h).run(cmd), max_workers=20)
        for host, r in results.items():
            print(host, r.value if r.ok else r.error)

A failure is a value (``HostResult.error``), never the first exception to escape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from glm5cluster.connect.base import Connection
from glm5cluster.errors import TransportError
from glm5cluster.model.nodes import Node

T = TypeVar("T")
Factory = Callable[[Node], Connection]


@dataclass(frozen=True)
class ConnectOptions:
    """Run-wide transport settings (CLI flags); per-host ones come from the inventory."""

    accept_new_host_keys: bool = False
    transport: Literal["paramiko", "openssh", "local"] = "paramiko"
    user_known_hosts: str | None = "~/.ssh/known_hosts"
    ssh_config: str | None = None  # default: the target's config_file, else ~/.ssh/config
    connect_attempts: int = 3
    retry_delay: float = 1.0


def default_factory(options: ConnectOptions) -> Factory:
    """Build real connections (SSH by default) from resolved inventory nodes."""

    def make(node: Node) -> Connection:
        if options.transport == "local":
            from glm5cluster.connect.local import LocalConnection

            return LocalConnection(node.name, node.ssh.command_timeout)
        from glm5cluster.connect.sshconfig import resolve

        endpoint = resolve(node.ssh, options.ssh_config)
        if options.transport == "openssh":
            from glm5cluster.connect.openssh import OpenSshConnection

            return OpenSshConnection(node.name, endpoint, node.ssh, options)
        from glm5cluster.connect.ssh import SshConnection, SshOptions

        return SshConnection(
            node.name, endpoint, node.ssh.known_hosts,
            SshOptions(accept_new_host_keys=options.accept_new_host_keys,
                       user_known_hosts=options.user_known_hosts,
                       connect_timeout=node.ssh.connect_timeout,
                       command_timeout=node.ssh.command_timeout,
                       connect_attempts=options.connect_attempts,
                       retry_delay=options.retry_delay),
            needs_sudo=node.ssh.needs_sudo,
        )

    return make


class ConnectionPool:
    """Lazily creates one connection per host and closes them all at the end."""

    def __init__(self, nodes: Iterable[Node], options: ConnectOptions | None = None,
                 factory: Factory | None = None) -> None:
        self.nodes: dict[str, Node] = {n.name: n for n in nodes}
        self.options = options or ConnectOptions()
        self._factory = factory or default_factory(self.options)
        self._conns: dict[str, Connection] = {}
        self._lock = threading.Lock()

    def get(self, host: str) -> Connection:
        with self._lock:
            conn = self._conns.get(host)
            if conn is None:
                if host not in self.nodes:
                    raise KeyError(f"unknown host {host!r}")
                conn = self._factory(self.nodes[host])
                self._conns[host] = conn
            return conn

    def drop(self, host: str) -> None:
        """Close and forget ``host``'s connection (the next ``get`` connects again)."""
        with self._lock:
            conn = self._conns.pop(host, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - the host may be gone (rebooting)
                pass

    def close_all(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001, S112 - closing must not mask the run's outcome
                continue

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()


@dataclass(frozen=True)
class HostResult(Generic[T]):
    """The value ``fn`` returned for one host, or the error it raised; and how long it took."""

    host: str
    value: T | None = None
    error: BaseException | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def unreachable(self) -> bool:
        return isinstance(self.error, TransportError)


class FanOutTimeout(TransportError):
    """A host did not finish within the fan-out's deadline."""


def fan_out(hosts: Sequence[str], fn: Callable[[str], T], max_workers: int = 20,
            timeout: float | None = None) -> Mapping[str, HostResult[T]]:
    """Run ``fn(host)`` for every host on a bounded thread pool; every host gets a result.

    ``timeout`` bounds the whole join: a host still running then gets a ``FanOutTimeout`` error
    (its thread is abandoned, never joined without a limit).
    """
    results: dict[str, HostResult[T]] = {}
    if not hosts:
        return results

    def call(host: str) -> HostResult[T]:
        start = time.monotonic()
        try:
            return HostResult(host, value=fn(host), duration=time.monotonic() - start)
        except BaseException as e:  # noqa: BLE001 - a failure is a value
            return HostResult(host, error=e, duration=time.monotonic() - start)

    if (len(hosts) == 1 or max_workers <= 1) and timeout is None:
        return {h: call(h) for h in hosts}
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(hosts))),
                              thread_name_prefix="fan-out")
    futures = {pool.submit(call, h): h for h in hosts}
    try:
        done, _ = wait(futures, timeout=timeout)
        for fut, host in futures.items():
            if fut in done:
                results[host] = fut.result()
            else:
                fut.cancel()
                results[host] = HostResult(host, error=FanOutTimeout(
                    f"{host}: no result within {timeout:.0f}s", hint="raise the step's timeout"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return {h: results[h] for h in hosts}
