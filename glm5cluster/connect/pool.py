"""One connection per host per run, and a fan-out that returns a value for every host.

    with ConnectionPool(nodes, ConnectOptions(accept_new_host_keys=False)) as pool:
        results = fan_out([n.name for n in nodes], lambda h: pool.get(h).run(cmd), max_workers=20)
        for host, r in results.items():
            print(host, r.value if r.ok else r.error)

A failure is a value (``HostResult.error``), never the first exception to escape;
an interrupt (``KeyboardInterrupt``, ``errors.Interrupted``) is not a failure: it always escapes.

Ctrl-C: ``pool.interrupt()`` closes every connection (in-flight commands end at once) and from
then on every connection the pool handed out raises ``Interrupted`` instead of running a command;
only inside ``with pool.cleanup():`` can commands run again (ephemeral keys, agents, the run lock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from glm5cluster.commands import CommandResult, Shell, Upload
from glm5cluster.connect.base import Connection
from glm5cluster.errors import GlmError, Interrupted, TransportError
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
        return ssh_connection(node, endpoint, options)

    return make


def ssh_connection(node: Node, endpoint: Any, options: ConnectOptions) -> Any:
    """The engine's paramiko connection to ``node`` at its resolved ``endpoint`` (not yet
    connected): strict host keys, the node's timeouts and sudo. One place builds it, for the pool
    and for site steps' fabric connections. paramiko is imported here, on first use."""
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


class ConnectionPool:
    """Lazily creates one connection per host and closes them all at the end."""

    def __init__(self, nodes: Iterable[Node], options: ConnectOptions | None = None,
                 factory: Factory | None = None) -> None:
        self.nodes: dict[str, Node] = {n.name: n for n in nodes}
        self.options = options or ConnectOptions()
        self._factory = factory or default_factory(self.options)
        self._conns: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._epoch = 0  # bumped by interrupt(): connections handed out before it stop working
        self._interrupted = False
        self._cleaning = 0

    @property
    def interrupted(self) -> bool:
        """True once ``interrupt()`` ran (Ctrl-C), also while cleaning up."""
        return self._interrupted

    @property
    def stopping(self) -> bool:
        """True when no new work may start: interrupted and not inside ``cleanup()``."""
        return self._interrupted and not self._cleaning

    def get(self, host: str) -> Connection:
        with self._lock:
            if self.stopping:
                raise Interrupted(f"{host}: interrupted (Ctrl-C): no new command is started")
            conn = self._conns.get(host)
            if conn is None:
                if host not in self.nodes:
                    raise KeyError(f"unknown host {host!r}")
                conn = self._factory(self.nodes[host])
                self._conns[host] = conn
            return _Guarded(self, conn, self._epoch)

    def interrupt(self) -> None:
        """Ctrl-C: no new command starts, and the in-flight ones end now (their connections are
        closed, in the background: a connect in progress may take its timeout to give up)."""
        with self._lock:
            self._interrupted = True
            self._epoch += 1
            conns, self._conns = list(self._conns.values()), {}
        if conns:
            threading.Thread(target=_close_all, args=(conns,), daemon=True, name="interrupt-close").start()

    @contextmanager
    def cleanup(self) -> Iterator[None]:
        """After ``interrupt()``: let cleanups run commands (on fresh connections)."""
        with self._lock:
            self._cleaning += 1
        try:
            yield
        finally:
            with self._lock:
                self._cleaning -= 1

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
        _close_all(conns)

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()


def _close_all(conns: Iterable[Connection]) -> None:
    for c in conns:
        try:
            c.close()
        except Exception:  # noqa: BLE001, S112 - closing must not mask the run's outcome
            continue


class _Guarded:
    """A pooled connection that refuses to work once its pool was interrupted (Ctrl-C): a
    command already running when the connection was closed reports ``Interrupted``, not a lost
    connection, and no later command starts."""

    def __init__(self, pool: ConnectionPool, conn: Connection, epoch: int) -> None:
        self._pool, self._conn, self._epoch = pool, conn, epoch
        self.host = conn.host

    def _check(self) -> None:
        if self._epoch != self._pool._epoch:
            raise Interrupted(f"{self.host}: interrupted (Ctrl-C)")

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._check()
        try:
            return fn(*args)
        except GlmError:
            self._check()  # the connection was closed under the command by interrupt()
            raise

    def run(self, cmd: Shell) -> CommandResult:
        result: CommandResult = self._call(self._conn.run, cmd)
        return result

    def put(self, upload: Upload) -> CommandResult:
        result: CommandResult = self._call(self._conn.put, upload)
        return result

    def close(self) -> None:
        self._conn.close()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)  # AttributeError for a missing ``stream`` is kept
        if name == "stream":
            return lambda *args: self._call(attr, *args)
        return attr


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
    (its thread is abandoned, never joined without a limit). An interrupt is no result: a
    ``KeyboardInterrupt`` (Ctrl-C in the caller's thread, or ``Interrupted`` from a worker)
    escapes at once, queued hosts never start and running ones are abandoned.
    """
    results: dict[str, HostResult[T]] = {}
    if not hosts:
        return results

    def call(host: str) -> HostResult[T]:
        start = time.monotonic()
        try:
            return HostResult(host, value=fn(host), duration=time.monotonic() - start)
        except Exception as e:  # noqa: BLE001 - a failure is a value (an interrupt is not)
            return HostResult(host, error=e, duration=time.monotonic() - start)

    if (len(hosts) == 1 or max_workers <= 1) and timeout is None:
        return {h: call(h) for h in hosts}
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(hosts))),
                              thread_name_prefix="fan-out")
    futures = {pool.submit(call, h): h for h in hosts}
    try:
        end = None if timeout is None else time.monotonic() + timeout
        while True:  # an interrupt from a worker ends the wait at once
            left = None if end is None else max(0.0, end - time.monotonic())
            done, pending = wait(futures, timeout=left, return_when=FIRST_EXCEPTION)
            for fut in done:
                if fut.exception() is not None:
                    raise fut.exception()  # type: ignore[misc]
            if not pending or (end is not None and time.monotonic() >= end):
                break
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
