"""The run lock: one changing run (`up`, `down`, `run`) per cluster at a time.

The lock is a file on the cluster's first host (the inventory's first host: replica 0's head),
``/var/lib/glm5cluster/locks/<cluster>.lock``, created atomically (``set -C``: O_EXCL) and holding
who took it (user@controller), when, which command and its pid. A second run is refused with
the holder's name; a stale lock (its run died with its controller) is broken only on request
(``--break-lock``). Release removes the file only while it still holds this run's token, so a
run never removes a lock that was broken and taken by another. Read-only commands (status,
logs, plan, validate, --check) take no lock.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.errors import GlmError
from glm5cluster.redact import mask

LOCK_DIR = "/var/lib/glm5cluster/locks"
TIMEOUT = 30.0


class RunLocked(GlmError):
    """Another run holds the cluster's lock."""


@dataclass(frozen=True)
class Holder:
    who: str  # user@controller host
    command: str
    pid: int
    since: str  # UTC, ISO 8601
    token: str

    @classmethod
    def this_run(cls, command: str | None = None) -> Holder:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # pragma: no cover - no passwd entry
            user = str(os.getuid())
        cmd = command or "glm5cluster " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        return cls(f"{user}@{socket.gethostname()}", mask(cmd), os.getpid(),
                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), uuid.uuid4().hex)

    def describe(self) -> str:
        return f"{self.who} (pid {self.pid}) since {self.since}: {self.command}"


def lock_file(cluster: str, lock_dir: str = LOCK_DIR) -> str:
    return f"{lock_dir}/{cluster}.lock"


def acquire_command(cluster: str, holder: Holder, break_lock: bool = False, lock_dir: str = LOCK_DIR) -> Shell:
    """Create the lock file unless it exists (atomically); print ACQUIRED, or HELD and the holder."""
    f = shlex.quote(lock_file(cluster, lock_dir))
    script = (f"set -e; umask 022; mkdir -p {shlex.quote(lock_dir)}; "
              + (f"rm -f {f}; " if break_lock else "")
              + f"if (set -C; cat > {f}) 2>/dev/null; then echo ACQUIRED; "
              f"else echo HELD; cat {f} 2>/dev/null || true; fi")
    return Shell.sh(script, sudo=True, stdin=json.dumps(asdict(holder)) + "\n", timeout=TIMEOUT,
                    description=f"take the run lock {lock_file(cluster, lock_dir)}"
                    + (" (breaking the old one)" if break_lock else ""))


def release_command(cluster: str, holder: Holder, lock_dir: str = LOCK_DIR) -> Shell:
    f = shlex.quote(lock_file(cluster, lock_dir))
    return Shell.sh(f"if grep -qF {shlex.quote(holder.token)} {f} 2>/dev/null; then rm -f {f}; fi",
                    sudo=True, timeout=TIMEOUT, description=f"release the run lock {lock_file(cluster, lock_dir)}")


def parse_acquire(result: CommandResult) -> Holder | None:
    """None when this run took the lock; the other holder when it is held."""
    lines = result.stdout.strip().splitlines()
    if not result.ok or not lines or lines[0] not in ("ACQUIRED", "HELD"):
        raise GlmError(f"could not take the run lock (exit {result.exit_code}): {result.tail(3)}",
                       hint="the lock needs passwordless sudo for a non-root SSH user")
    if lines[0] == "ACQUIRED":
        return None
    try:
        doc = json.loads("\n".join(lines[1:]))
        return Holder(str(doc["who"]), str(doc["command"]), int(doc["pid"]), str(doc["since"]), str(doc["token"]))
    except (ValueError, KeyError, TypeError):
        return Holder("unknown (unreadable lock file)", "?", 0, "?", "")


def take(pool: ConnectionPool, host: str, cluster: str, holder: Holder, break_lock: bool = False,
         lock_dir: str = LOCK_DIR) -> None:
    """Take the lock on ``host`` or raise ``RunLocked`` naming the holder."""
    other = parse_acquire(pool.get(host).run(acquire_command(cluster, holder, break_lock, lock_dir)))
    if other is not None:
        where = lock_file(cluster, lock_dir)
        raise RunLocked(
            f"cluster {cluster!r} is locked by another run: {other.describe()} "
            f"(lock {where} on {host})",
            hint=("wait for that run to finish; if it is gone (its controller crashed or was "
                  "switched off), re-run with --break-lock"))


def release(pool: ConnectionPool, host: str, cluster: str, holder: Holder, lock_dir: str = LOCK_DIR) -> bool:
    """Remove the lock if it is still this run's (also after Ctrl-C). True when released."""
    if pool.interrupted:
        with pool.cleanup():
            return pool.get(host).run(release_command(cluster, holder, lock_dir)).ok
    return pool.get(host).run(release_command(cluster, holder, lock_dir)).ok
