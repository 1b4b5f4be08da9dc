"""connect/ against a real OpenSSH server on 127.0.0.1 (tests/engine/conftest.py)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from glm5cluster.commands import Secret, Shell, Upload
from glm5cluster.connect.pool import ConnectionPool, ConnectOptions, fan_out
from glm5cluster.connect.ssh import SshConnection, SshOptions
from glm5cluster.connect.sshconfig import resolve
from glm5cluster.errors import HostKeyError, TransportError
from glm5cluster.model.inventory import GpuKind
from glm5cluster.model.nodes import Node, SshTarget
from tests.engine.conftest import LocalSshd, free_port, keygen, start_sshd


def target(s: LocalSshd, known: Path | None = None, **kw: object) -> SshTarget:
    return SshTarget(address="127.0.0.1", port=s.port, identity_file=str(s.client_key),
                     known_hosts=str(known or s.known_hosts), connect_timeout=5, **kw)  # type: ignore[arg-type]


def conn(s: LocalSshd, known: Path | None = None, accept: bool = False, **kw: object) -> SshConnection:
    t = target(s, known, **kw)
    return SshConnection("h1", resolve(t), t.known_hosts,
                         SshOptions(accept_new_host_keys=accept, user_known_hosts=None,
                                    connect_attempts=2, retry_delay=0.1))


def test_run_results_stdin_and_timeout(sshd: LocalSshd) -> None:
    c = conn(sshd)
    try:
        r = c.run(Shell.sh("echo out; echo err >&2; exit 3"))
        assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
        assert c.run(Shell.sh("cat", stdin=Secret("t", "s3cret"))).stdout == "s3cret"
        assert c.run(Shell.cmd("printf", "%s", "a b; $(x)")).stdout == "a b; $(x)"
        slow = c.run(Shell.sh("sleep 5", timeout=0.5))
        assert slow.exit_code == 124 and "timed out" in slow.stderr
        first = c._transports[-1]
        c.run(Shell.cmd("true"))
        assert c._transports[-1] is first  # one connection per host, reused
    finally:
        c.close()


def test_upload_is_atomic_with_mode(sshd: LocalSshd, tmp_path: Path) -> None:
    c = conn(sshd)
    dest = tmp_path / "env"
    try:
        r = c.put(Upload(dest=str(dest), content=b"TOKEN=x\n", mode=0o600, owner="root"))
        assert r.ok, r
        assert dest.read_bytes() == b"TOKEN=x\n"
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".glm5cluster")]
        bad = c.put(Upload(dest="/nonexistent/dir/file", content=b"x"))
        assert not bad.ok
    finally:
        c.close()


def test_unknown_key_refused_with_fingerprint_and_command(sshd: LocalSshd, tmp_path: Path) -> None:
    empty = tmp_path / "kh"
    with pytest.raises(HostKeyError) as e:
        conn(sshd, empty).run(Shell.cmd("true"))
    assert "unknown" in e.value.message and "SHA256:" in e.value.message
    assert e.value.hint and "--accept-new-host-keys" in e.value.hint
    assert f"ssh-keyscan -t ed25519 -p {sshd.port} 127.0.0.1 >> {empty}" in e.value.hint
    assert not empty.exists()


def test_accept_new_records_then_verifies(sshd: LocalSshd, tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    c = conn(sshd, kh, accept=True)
    assert c.run(Shell.cmd("true")).ok
    c.close()
    entry = kh.read_text().split()  # hashed, as HashKnownHosts yes
    assert entry[0].startswith("|1|") and entry[1] == "ssh-ed25519"
    strict = conn(sshd, kh)
    assert strict.run(Shell.cmd("true")).ok
    strict.close()


def test_changed_key_always_refused(sshd: LocalSshd, tmp_path: Path) -> None:
    old_known = tmp_path / "old_known_hosts"
    old_known.write_text(sshd.known_hosts.read_text())
    sshd.stop()
    new_key = tmp_path / "new_host"
    keygen(new_key)
    again = start_sshd(sshd.dir, port=sshd.port, host_key=new_key)  # the host was re-created
    try:
        for accept in (False, True):
            with pytest.raises(HostKeyError) as e:
                conn(again, old_known, accept=accept).run(Shell.cmd("true"))
            assert "CHANGED" in e.value.message
            assert e.value.hint and "ssh-keygen -R" in e.value.hint
    finally:
        again.stop()


def test_refused_connection_is_transport_error_after_retries(tmp_path: Path) -> None:
    port = free_port()
    t = SshTarget(address="127.0.0.1", port=port, connect_timeout=2)
    c = SshConnection("h1", resolve(t), None,
                      SshOptions(user_known_hosts=None, connect_attempts=2, retry_delay=0.05))
    start = time.monotonic()
    with pytest.raises(TransportError, match="connection refused"):
        c.run(Shell.cmd("true"))
    assert time.monotonic() - start < 2


def test_jump_host_and_ssh_config(sshd: LocalSshd, tmp_path: Path) -> None:
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host target\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                   f"  IdentityFile {sshd.client_key}\n"
                   f"Host bastion\n  HostName 127.0.0.1\n  Port {sshd.port}\n")
    t = SshTarget(address="target", jump_host="bastion", known_hosts=str(sshd.known_hosts),
                  config_file=str(cfg))
    ep = resolve(t)
    assert (ep.host, ep.port, ep.identity_files) == ("127.0.0.1", sshd.port, (str(sshd.client_key),))
    assert ep.jumps[0].host == "127.0.0.1" and ep.jumps[0].port == sshd.port
    c = SshConnection("h1", ep, t.known_hosts, SshOptions(user_known_hosts=None))
    try:
        assert c.run(Shell.cmd("echo", "via jump")).stdout == "via jump\n"
        assert len(c._transports) == 2
    finally:
        c.close()


def test_jump_host_key_is_verified_too(sshd: LocalSshd, tmp_path: Path) -> None:
    other = start_sshd(tmp_path / "jump")  # a jump host whose key is in no file we pass
    try:
        t = SshTarget(address="127.0.0.1", port=sshd.port, identity_file=str(sshd.client_key),
                      known_hosts=str(sshd.known_hosts), jump_host=f"127.0.0.1:{other.port}")
        c = SshConnection("h1", resolve(t), t.known_hosts, SshOptions(user_known_hosts=None))
        with pytest.raises(HostKeyError, match="unknown"):
            c.run(Shell.cmd("true"))
    finally:
        other.stop()


def test_pool_fan_out_every_host(sshd: LocalSshd) -> None:
    def node(name: str, port: int) -> Node:
        ssh = SshTarget(address="127.0.0.1", port=port, identity_file=str(sshd.client_key),
                        known_hosts=str(sshd.known_hosts), connect_timeout=2)
        return Node(name, ssh, "127.0.0.1", None, GpuKind.H200, 8)

    nodes = [node(f"n{i}", sshd.port) for i in range(4)] + [node("down", free_port())]
    opts = ConnectOptions(user_known_hosts=None, connect_attempts=1)
    with ConnectionPool(nodes, opts) as pool:
        got = fan_out([n.name for n in nodes], lambda h: pool.get(h).run(Shell.cmd("hostname")), 8)
    assert [h for h, r in got.items() if r.ok] == ["n0", "n1", "n2", "n3"]
    assert got["down"].unreachable and "refused" in str(got["down"].error)


def test_fan_out_timeout_and_errors_are_values() -> None:
    def fn(h: str) -> str:
        if h == "slow":
            time.sleep(2)
        if h == "bad":
            raise ValueError("nope")
        return h.upper()

    got = fan_out(["a", "slow", "bad"], fn, 4, timeout=0.5)
    assert got["a"].value == "A" and isinstance(got["bad"].error, ValueError)
    assert isinstance(got["slow"].error, TransportError) and "no result within" in str(got["slow"].error)


def test_local_sshd_is_root() -> None:
    assert os.geteuid() == 0 or pytest.skip("needs root for sshd")


def test_output_complete_up_to_eof(sshd: LocalSshd) -> None:
    """sshd may send the exit status before the last output; nothing may be cut off."""
    c = conn(sshd)
    try:
        for _ in range(5):
            r = c.run(Shell.sh("seq 1 100000; echo done >&2"))
            assert r.ok and r.stdout.endswith("99999\n100000\n") and len(r.stdout.splitlines()) == 100000
            assert r.stderr == "done\n"
    finally:
        c.close()


def openssh(s: LocalSshd, known: Path | None = None, accept: bool = False) -> object:
    from glm5cluster.connect.openssh import OpenSshConnection

    t = target(s, known)
    opts = ConnectOptions(accept_new_host_keys=accept, user_known_hosts=None, connect_attempts=1)
    return OpenSshConnection("h1", resolve(t), t, opts)


def test_openssh_transport(sshd: LocalSshd, tmp_path: Path) -> None:
    c = openssh(sshd)
    try:
        r = c.run(Shell.sh("cat; echo err >&2; exit 5", stdin=Secret("t", "abc")))  # type: ignore[attr-defined]
        assert (r.exit_code, r.stdout, r.stderr) == (5, "abc", "err\n")
        dest = tmp_path / "f"
        assert c.put(Upload(dest=str(dest), content=b"x\x00y", mode=0o600)).ok  # type: ignore[attr-defined]
        assert dest.read_bytes() == b"x\x00y" and stat.S_IMODE(dest.stat().st_mode) == 0o600
    finally:
        c.close()  # type: ignore[attr-defined]
    with pytest.raises(HostKeyError):
        openssh(sshd, tmp_path / "empty").run(Shell.cmd("true"))  # type: ignore[attr-defined]
    accepted = openssh(sshd, tmp_path / "new", accept=True)
    assert accepted.run(Shell.cmd("true")).ok  # type: ignore[attr-defined]
    accepted.close()  # type: ignore[attr-defined]
    assert (tmp_path / "new").read_text().strip()
