"""The multi-node rendezvous over real TCP, standing in for torch's TCPStore + NCCL links.

Node 0 listens on the --dist-init-addr port; every other node connects, sends
`HELLO <rank> <nnodes> <tp>`; once all --nnodes joined with unique ranks node 0 answers
READY. The connections stay open for the life of the group: EOF on one means a peer died.
Messages after READY: LOADED (peer -> 0), GO and SHUTDOWN (0 -> peers).
"""

import socket
import threading
import time

from sglang._sim.slog import c10d_stamp, emit


class RendezvousError(Exception):
    """Carries the final exception line of the real failure."""


class Stopped(Exception):
    """Node 0 was stopped (SIGTERM) before the group formed."""


def split_addr(addr):
    if addr.startswith("["):
        host, _, port = addr[1:].partition("]:")
    else:
        host, _, port = addr.rpartition(":")
    return host, int(port)


def _send(sock, line):
    try:
        sock.sendall((line + "\n").encode())
        return True
    except OSError:
        return False


class LineReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def readline(self):
        """The next line, or None on EOF / error."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace").strip()


class Head:
    """Node 0's side."""

    def __init__(self, host, port, nnodes, tp_size):
        self.host, self.port, self.nnodes, self.tp_size = host, port, nnodes, tp_size
        self.peers = {}  # rank -> (sock, LineReader, address)
        self.loaded = set()
        self.cond = threading.Condition()
        self.closing = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = socket.socket(family, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.server.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        except OSError:
            raise RendezvousError(  # noqa: B904 - the real error is raised without a cause
                "torch.distributed.DistNetworkError: The server socket has failed to listen on any "
                f"local network address. port: {port}, useIpv6: {str(family == socket.AF_INET6).lower()}, "
                "code: -98, name: EADDRINUSE, message: address already in use") from None
        self.server.listen(64)

    def wait_for_all(self, timeout):
        threading.Thread(target=self._accept_loop, daemon=True).start()
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.peers) < self.nnodes - 1:
                left = deadline - time.monotonic()
                if left <= 0:
                    joined = len(self.peers) + 1
                    self.broadcast("ABORT store timeout")
                    raise RendezvousError(
                        f"torch.distributed.DistStoreError: Timed out after {int(timeout) + 1} seconds "
                        f"waiting for clients. {joined}/{self.nnodes} clients joined.")
                self.cond.wait(min(left, 0.5))
        self.broadcast("READY")

    def _accept_loop(self):
        while True:
            try:
                sock, addr = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(sock, addr), daemon=True).start()

    def _handshake(self, sock, addr):
        reader = LineReader(sock)
        sock.settimeout(30)
        line = reader.readline()
        sock.settimeout(None)
        parts = (line or "").split()
        if len(parts) != 4 or parts[0] != "HELLO":
            sock.close()
            return
        rank, nnodes, tp = int(parts[1]), int(parts[2]), int(parts[3])
        with self.cond:
            problem = None
            if nnodes != self.nnodes or tp != self.tp_size:
                problem = (f"node rank {rank} was started with --nnodes {nnodes} --tp-size {tp}, "
                           f"node 0 with --nnodes {self.nnodes} --tp-size {self.tp_size}")
            elif not 1 <= rank < self.nnodes:
                problem = f"node rank {rank} is out of range for --nnodes {self.nnodes}"
            elif rank in self.peers:
                problem = f"node rank {rank} has already joined the group (duplicate --node-rank)"
            elif len(self.peers) >= self.nnodes - 1 or self.closing:
                problem = "the group is already complete"
            if problem:
                _send(sock, "ERR " + problem)
                sock.close()
                return
            self.peers[rank] = (sock, reader, addr[0])
            self.cond.notify_all()

    def broadcast(self, line):
        for sock, _, _ in list(self.peers.values()):
            _send(sock, line)

    def monitor(self, on_lost):
        """Follow every peer; on EOF without a shutdown in progress, call on_lost(rank, addr)."""
        for rank, (_sock, reader, addr) in self.peers.items():
            threading.Thread(target=self._follow, args=(rank, reader, addr, on_lost), daemon=True).start()

    def _follow(self, rank, reader, addr, on_lost):
        while True:
            line = reader.readline()
            if line is None:
                if not self.closing:
                    on_lost(rank, addr)
                return
            if line == "LOADED":
                with self.cond:
                    self.loaded.add(rank)
                    self.cond.notify_all()

    def wait_loaded(self):
        with self.cond:
            while len(self.loaded) < self.nnodes - 1:
                self.cond.wait(0.5)
        self.broadcast("GO")

    def shutdown(self):
        self.closing = True
        self.broadcast("SHUTDOWN")
        for sock, _, _ in list(self.peers.values()):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Member:
    """The side of a node with rank >= 1."""

    def __init__(self, host, port, rank, nnodes, tp_size):
        self.host, self.port, self.rank, self.nnodes, self.tp_size = host, port, rank, nnodes, tp_size
        self.sock = None
        self.reader = None
        self.go = threading.Event()

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        last_warn = 0.0
        while self.sock is None:
            try:
                self.sock = socket.create_connection((self.host, self.port), timeout=5)
                self.sock.settimeout(None)
            except OSError as e:
                now = time.monotonic()
                if now - last_warn >= 10:
                    last_warn = now
                    emit("c10d_client_connect_failed", stamp=c10d_stamp(), host=self.host, port=self.port,
                         errno=e.errno or 110, strerror=e.strerror or "Connection timed out")
                if now >= deadline:
                    raise RendezvousError(  # noqa: B904
                        f"torch.distributed.DistNetworkError: The client socket has timed out after "
                        f"{int(timeout * 1000)}ms while trying to connect to ({self.host}, {self.port}).")
                time.sleep(min(1.0, max(0.05, deadline - now)))
        self.reader = LineReader(self.sock)
        _send(self.sock, f"HELLO {self.rank} {self.nnodes} {self.tp_size}")
        self.sock.settimeout(max(1.0, deadline - time.monotonic() + 5))
        line = self.reader.readline()
        self.sock.settimeout(None)
        if line == "READY":
            return
        if line == "SHUTDOWN":
            raise Stopped()
        if line and line.startswith("ERR "):
            raise RendezvousError(f"RuntimeError: {line[4:]}")
        raise RendezvousError(
            f"torch.distributed.DistStoreError: wait timeout after {int(timeout * 1000)}ms, "
            f"keys: /default_pg/0//cuda//0 (the store on {self.host}:{self.port} closed the "
            f"connection: the group did not form)")

    def monitor(self, on_lost, on_shutdown):
        def follow():
            while True:
                line = self.reader.readline()
                if line is None:
                    on_lost()
                    return
                if line == "GO":
                    self.go.set()
                elif line == "SHUTDOWN":
                    on_shutdown()
                    return

        threading.Thread(target=follow, daemon=True).start()

    def report_loaded(self):
        _send(self.sock, "LOADED")
