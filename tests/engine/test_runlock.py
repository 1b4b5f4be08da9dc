"""The run lock: taken atomically on the first host, refused naming the holder, broken only on
request, released only by its own run (the lock script runs in a real shell, on this machine)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from glm5cluster.connect.local import LocalConnection
from glm5cluster.connect.pool import ConnectionPool, fan_out
from glm5cluster.engine import runlock
from glm5cluster.engine.runlock import Holder, RunLocked
from tests.engine.fakes import node


def pool() -> ConnectionPool:
    return ConnectionPool([node("head")], factory=lambda n: LocalConnection(n.name))


def test_second_run_is_refused_naming_the_holder_until_released(tmp_path: Path) -> None:
    lock_dir = str(tmp_path / "locks")
    first, second = Holder.this_run("glm5cluster up inv.yaml"), Holder.this_run("glm5cluster down inv.yaml")
    with pool() as p:
        runlock.take(p, "head", "c1", first, lock_dir=lock_dir)
        doc = json.loads((tmp_path / "locks" / "c1.lock").read_text())
        assert doc["command"] == "glm5cluster up inv.yaml" and doc["pid"] == first.pid and "@" in doc["who"]
        with pytest.raises(RunLocked) as err:
            runlock.take(p, "head", "c1", second, lock_dir=lock_dir)
        assert first.who in err.value.message and "glm5cluster up inv.yaml" in err.value.message
        assert f"pid {first.pid}" in err.value.message and "--break-lock" in (err.value.hint or "")
        runlock.take(p, "head", "other-cluster", second, lock_dir=lock_dir)  # per cluster
        runlock.release(p, "head", "c1", second, lock_dir=lock_dir)  # not its lock: left alone
        assert (tmp_path / "locks" / "c1.lock").exists()
        assert runlock.release(p, "head", "c1", first, lock_dir=lock_dir)
        assert not (tmp_path / "locks" / "c1.lock").exists()
        runlock.take(p, "head", "c1", second, lock_dir=lock_dir)


def test_a_stale_lock_is_broken_only_on_request(tmp_path: Path) -> None:
    lock_dir = str(tmp_path / "locks")
    dead, me = Holder.this_run("glm5cluster up a.yaml"), Holder.this_run("glm5cluster up b.yaml")
    with pool() as p:
        runlock.take(p, "head", "c1", dead, lock_dir=lock_dir)
        with pytest.raises(RunLocked):
            runlock.take(p, "head", "c1", me, lock_dir=lock_dir)
        runlock.take(p, "head", "c1", me, break_lock=True, lock_dir=lock_dir)
        assert json.loads((tmp_path / "locks" / "c1.lock").read_text())["token"] == me.token
        runlock.release(p, "head", "c1", dead, lock_dir=lock_dir)  # the old run, late: no effect
        assert (tmp_path / "locks" / "c1.lock").exists()


def test_only_one_of_many_concurrent_runs_gets_the_lock(tmp_path: Path) -> None:
    lock_dir = str(tmp_path / "locks")
    holders = {str(i): Holder.this_run(f"run {i}") for i in range(8)}
    barrier = threading.Barrier(8)
    with pool() as p:
        def one(i: str) -> None:
            barrier.wait()
            runlock.take(p, "head", "c1", holders[i], lock_dir=lock_dir)

        got = fan_out(list(holders), one, 8)
    assert sum(1 for r in got.values() if r.ok) == 1
    assert all(isinstance(r.error, RunLocked) for r in got.values() if not r.ok)


def test_release_after_ctrl_c_runs_on_a_fresh_connection(tmp_path: Path) -> None:
    lock_dir = str(tmp_path / "locks")
    me = Holder.this_run("glm5cluster up inv.yaml")
    with pool() as p:
        runlock.take(p, "head", "c1", me, lock_dir=lock_dir)
        p.interrupt()
        assert runlock.release(p, "head", "c1", me, lock_dir=lock_dir)
    assert not (tmp_path / "locks" / "c1.lock").exists()
