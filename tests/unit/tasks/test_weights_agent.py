"""The weights agent (runs on nodes) against a fake hub on 127.0.0.1: list, check, fetch with
resume after a kill, repair of one corrupted file, peer pull over the serve stream (pipelined, resumed, verified against the hub), stamp, the ssh gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from weights_fakehub import COMMIT, FakeHub, make_repo

from glm5cluster.tasks import agents
from glm5cluster.tasks.weights import agent_bytes

# What the nodes run: the one file built from tasks/agents/weights/ (as weights.tools uploads it).
AGENT_SOURCE = Path(tempfile.mkdtemp(prefix="glm5-weights-agent-")) / "glm5-weights-agent.py"
AGENT_SOURCE.write_bytes(agent_bytes())
AGENT_ARGV = [sys.executable, str(AGENT_SOURCE)]

REPO = "zai-org/GLM-5-FP8"
TOKEN = "hf_secret_token_for_tests_123"


def agent(cmd: str, payload: dict | None = None, arg: str | None = None, token: str | None = TOKEN,
          wait: bool = True) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    if token:
        env["HF_TOKEN"] = token
    argv = [*AGENT_ARGV, cmd] + ([arg] if arg else [])
    if not wait:
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, input=json.dumps(payload or {}), env=env, capture_output=True, text=True, check=False)


def out(r: object) -> dict:
    assert isinstance(r, subprocess.CompletedProcess)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture()
def hub() -> Iterator[FakeHub]:
    h = FakeHub(make_repo(6, 300_000), token=TOKEN)
    yield h
    h.close()


def listing(hub: FakeHub) -> dict:
    return out(agent("list", {"repo": REPO, "revision": "main", "endpoint": hub.url}))


def fetch(tmp: Path, hub: FakeHub, files: list[dict], **kw: object) -> subprocess.CompletedProcess[str]:
    req = {"dir": str(tmp), "repo": REPO, "commit": COMMIT, "endpoint": hub.url, "files": files,
           "stall_timeout": 5, "retries": 3, "workers": 3, **kw}
    (tmp.parent / "req.json").write_text(json.dumps(req))
    r = agent("fetch", arg=str(tmp.parent / "req.json"))
    assert isinstance(r, subprocess.CompletedProcess)
    return r


def check(d: Path, files: list[dict], full: bool = False, mark: bool = True) -> dict:
    return out(agent("check", {"dir": str(d), "repo": REPO, "commit": COMMIT, "files": files, "full": full, "mark": mark}))


def test_list_resolves_commit_and_lfs_sha(hub: FakeHub) -> None:
    doc = listing(hub)
    assert doc["commit"] == COMMIT
    shards = [f for f in doc["files"] if f["path"].endswith(".safetensors")]
    assert len(shards) == 6 and all(len(f["sha256"]) == 64 and f["size"] == 300_000 for f in shards)
    assert f"Bearer {TOKEN}" in hub.seen_auth


def test_fetch_verify_stamp_then_rerun_is_instant(tmp_path: Path, hub: FakeHub) -> None:
    files = listing(hub)["files"]
    d = tmp_path / "w"
    st = check(d, files)
    assert st["need"] == sum(f["size"] for f in files) and st["free"] > 0
    r = fetch(d, hub, files)
    assert r.returncode == 0, r.stderr
    for f in files:
        assert (d / f["path"]).read_bytes() == hub.files[f["path"]]
    out(agent("stamp", {"dir": str(d), "repo": REPO, "commit": COMMIT, "files": files}))
    manifest = json.loads((d / ".glm5cluster-manifest.json").read_text())
    assert manifest["commit"] == COMMIT and len(manifest["files"]) == len(files)
    again = check(d, files)
    assert again["hashed"] == 0 and set(again["status"].values()) == {"ok"} and again["need"] == 0
    # progress file for the controller's bars
    prog = json.loads((d / ".glm5cluster/progress.json").read_text())
    assert prog["phase"] == "done" and prog["done"] == prog["total"]


def test_corrupted_shard_found_and_only_it_refetched(tmp_path: Path, hub: FakeHub) -> None:
    files = listing(hub)["files"]
    d = tmp_path / "w"
    assert fetch(d, hub, files).returncode == 0
    out(agent("stamp", {"dir": str(d), "repo": REPO, "commit": COMMIT, "files": files}))
    victim = d / "model-00003-of-00006.safetensors"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))  # same size, new mtime
    st = check(d, files)
    bad = [p for p, s in st["status"].items() if s != "ok"]
    assert bad == ["model-00003-of-00006.safetensors"] and st["hashed"] == 1
    before = {f["path"]: (d / f["path"]).stat().st_mtime_ns for f in files}
    assert fetch(d, hub, [f for f in files if f["path"] in bad]).returncode == 0
    after = {f["path"]: (d / f["path"]).stat().st_mtime_ns for f in files}
    assert [p for p in before if before[p] != after[p]] == bad
    assert victim.read_bytes() == hub.files[victim.name]


def test_full_verify_finds_corruption_with_kept_mtime(tmp_path: Path, hub: FakeHub) -> None:
    files = listing(hub)["files"]
    d = tmp_path / "w"
    assert fetch(d, hub, files).returncode == 0
    out(agent("stamp", {"dir": str(d), "repo": REPO, "commit": COMMIT, "files": files}))
    victim = d / "model-00001-of-00006.safetensors"
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[5] ^= 1
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert set(check(d, files)["status"].values()) == {"ok"}  # the stamp trusts size+mtime
    assert check(d, files, full=True)["status"][victim.name] == "digest"


def test_killed_download_resumes(tmp_path: Path) -> None:
    hub = FakeHub(make_repo(2, 2_000_000), rate=2_000_000, token=TOKEN)
    try:
        files = listing(hub)["files"]
        d = tmp_path / "w"
        req = {"dir": str(d), "repo": REPO, "commit": COMMIT, "endpoint": hub.url, "files": files,
               "stall_timeout": 5, "retries": 3, "workers": 2}
        (tmp_path / "req.json").write_text(json.dumps(req))
        p = agent("fetch", arg=str(tmp_path / "req.json"), wait=False)
        assert isinstance(p, subprocess.Popen)
        part_dir = d / ".glm5cluster/partial"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            parts = list(part_dir.glob("*.part")) if part_dir.exists() else []
            if sum(x.stat().st_size for x in parts) > 1_000_000:
                break
            time.sleep(0.05)
        p.kill()
        p.wait()
        partial = sum(x.stat().st_size for x in part_dir.glob("*.part"))
        assert partial > 0
        st = check(d, files)
        todo = sum(f["size"] for f in files if st["status"][f["path"]] != "ok")
        assert st["partial"] == partial and st["need"] == todo - partial
        hub.rate = None
        served_before = len(hub.seen_auth)
        r = subprocess.run([*AGENT_ARGV, "fetch", str(tmp_path / "req.json")],
                           env={**os.environ, "HF_TOKEN": TOKEN}, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        assert len(hub.seen_auth) > served_before
        for f in files:
            assert (d / f["path"]).read_bytes() == hub.files[f["path"]]
    finally:
        hub.close()


def test_dropped_connection_is_retried_with_range(tmp_path: Path, hub: FakeHub) -> None:
    files = listing(hub)["files"]
    hub.fail_after = 100_000
    r = fetch(tmp_path / "w", hub, [f for f in files if f["path"].endswith("00001-of-00006.safetensors")], workers=1)
    assert r.returncode == 0, r.stderr
    assert "retry 1" in r.stderr


def test_wrong_token_fails_without_printing_it(tmp_path: Path, hub: FakeHub) -> None:
    r = agent("list", {"repo": REPO, "revision": "main", "endpoint": hub.url}, token="hf_wrong_value_xyz")
    assert isinstance(r, subprocess.CompletedProcess)
    assert r.returncode != 0
    assert "hf_wrong_value_xyz" not in r.stdout + r.stderr


def test_peer_pull_pipelined_from_a_source_dir(tmp_path: Path, hub: FakeHub) -> None:
    files = listing(hub)["files"]
    src, dst = tmp_path / "src", tmp_path / "dst"
    assert fetch(src, hub, files).returncode == 0
    check(src, files)  # writes ready markers and state=done
    req = {"dir": str(dst), "files": files, "source": str(src), "source_name": "seed",
           "stall_timeout": 10, "retries": 2, "workers": 3, "source_wait": 20}
    (tmp_path / "pull.json").write_text(json.dumps(req))
    r = agent("pull", arg=str(tmp_path / "pull.json"))
    assert isinstance(r, subprocess.CompletedProcess) and r.returncode == 0, r.stderr
    for f in files:
        assert (dst / f["path"]).read_bytes() == hub.files[f["path"]]
    assert (dst / ".glm5cluster/ready/.state").read_text() == "done"


def test_pull_stops_when_the_source_failed(tmp_path: Path, hub: FakeHub) -> None:
    files = listing(hub)["files"]
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / ".glm5cluster/ready").mkdir(parents=True)
    (src / ".glm5cluster/ready/.state").write_text("failed: hub unreachable")
    req = {"dir": str(dst), "files": files, "source": str(src), "source_name": "seed", "workers": 2, "source_wait": 20}
    (tmp_path / "pull.json").write_text(json.dumps(req))
    r = agent("pull", arg=str(tmp_path / "pull.json"))
    assert isinstance(r, subprocess.CompletedProcess) and r.returncode == 1
    assert "source seed failed: hub unreachable" in r.stderr


def serve(root: Path, lines: list[str], env: dict[str, str] | None = None, gate: bool = False) -> tuple[int, bytes]:
    argv = [*AGENT_ARGV, "gate" if gate else "serve", str(root)]
    r = subprocess.run(argv, input="".join(lines).encode(), env=env or dict(os.environ), capture_output=True,
                       check=False, timeout=30)
    return r.returncode, r.stdout


def served_root(tmp: Path, hub: FakeHub) -> tuple[Path, list[dict]]:
    files = listing(hub)["files"]
    src = tmp / "src"
    assert fetch(src, hub, files).returncode == 0  # verified: ready markers written
    return src, files


@pytest.mark.parametrize("command,ok", [
    ("glm5-weights-serve", True),
    ("rsync --server --sender -logDtpre.iLsfxCIvu . model-00001.safetensors", False),
    ("glm5-weights-serve; sh -c id", False),
    ("sh -c id", False),
    ("", False),
])
def test_gate_allows_only_the_serve_stream(tmp_path: Path, hub: FakeHub, command: str, ok: bool) -> None:
    src, files = served_root(tmp_path, hub)
    env = {**os.environ, "SSH_ORIGINAL_COMMAND": command}
    rc, got = serve(src, [f"GET {quote(files[0]['path'], safe='')} 0 5\n"], env=env, gate=True)
    head, _, body = got.partition(b"\n")
    assert (rc == 0 and json.loads(head)["size"] == files[0]["size"]) is ok, got
    if ok:
        assert body == hub.files[files[0]["path"]]


@pytest.mark.parametrize("path", ["/etc/shadow", "../../etc/passwd", ".glm5cluster/req-fetch.json", "~root/x"])
def test_serve_refuses_paths_outside_the_verified_files(tmp_path: Path, hub: FakeHub, path: str) -> None:
    src, _ = served_root(tmp_path, hub)
    (src / ".glm5cluster/req-fetch.json").write_text("{}")
    rc, got = serve(src, [f"GET {quote(path, safe='')} 0 5\n"])
    assert rc == 1 and json.loads(got)["final"] and "refused" in json.loads(got)["error"], got


def test_serve_sends_only_verified_files_and_from_an_offset(tmp_path: Path, hub: FakeHub) -> None:
    src, files = served_root(tmp_path, hub)
    shard = next(f for f in files if f["path"].endswith(".safetensors"))
    (src / "unverified.bin").write_bytes(b"x" * 10)  # present, but never verified here
    (src / ".glm5cluster/ready/.state").write_text("done")
    q = quote(shard["path"], safe="")
    rc, got = serve(src, [f"GET {q} 1000 5\n", "GET unverified.bin 0 5\n"])
    head, _, rest = got.partition(b"\n")
    assert json.loads(head) == {"size": shard["size"], "offset": 1000}
    body, second = rest[:shard["size"] - 1000], rest[shard["size"] - 1000:]
    assert body == hub.files[shard["path"]][1000:]
    assert json.loads(second) == {"error": "finished without unverified.bin", "final": True}


def test_pull_resumes_a_partial_copy_and_rejects_bytes_that_do_not_match_the_hub(tmp_path: Path, hub: FakeHub) -> None:
    src, files = served_root(tmp_path, hub)
    shard = next(f for f in files if f["path"].endswith(".safetensors"))
    dst = tmp_path / "dst"
    part = dst / ".glm5cluster/partial" / (quote(shard["path"], safe="") + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(hub.files[shard["path"]][:5000])
    req = {"dir": str(dst), "files": [shard], "source": str(src), "source_name": "seed",
           "stall_timeout": 10, "retries": 1, "workers": 1, "source_wait": 20}
    (tmp_path / "pull.json").write_text(json.dumps(req))
    r = agent("pull", arg=str(tmp_path / "pull.json"))
    assert isinstance(r, subprocess.CompletedProcess) and r.returncode == 0, r.stderr
    assert (dst / shard["path"]).read_bytes() == hub.files[shard["path"]]
    # the source's copy is damaged after it verified it (mtime kept): the receiver refuses it
    bad = src / shard["path"]
    st = bad.stat()
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))
    (dst / shard["path"]).unlink()
    r = agent("pull", arg=str(tmp_path / "pull.json"))
    assert isinstance(r, subprocess.CompletedProcess) and r.returncode == 1
    assert "checksum mismatch after copy" in r.stderr and not (dst / shard["path"]).exists()


def test_pull_waits_for_files_the_source_is_still_verifying(tmp_path: Path, hub: FakeHub) -> None:
    src, files = served_root(tmp_path, hub)
    ready = src / ".glm5cluster/ready"
    held = {m.name: m.read_text() for m in ready.iterdir() if m.name != ".state"}
    for name in held:
        (ready / name).unlink()
    (ready / ".state").write_text("running")
    dst = tmp_path / "dst"
    req = {"dir": str(dst), "files": files, "source": str(src), "source_name": "seed",
           "stall_timeout": 10, "retries": 1, "workers": 2, "source_wait": 20}
    (tmp_path / "pull.json").write_text(json.dumps(req))
    proc = agent("pull", arg=str(tmp_path / "pull.json"), wait=False)
    assert isinstance(proc, subprocess.Popen)
    for name, text in held.items():  # the source verifies one file after the other
        time.sleep(0.3)
        (ready / name).write_text(text)
    (ready / ".state").write_text("done")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for f in files:
        assert (dst / f["path"]).read_bytes() == hub.files[f["path"]]


HOSTILE = ["../../escaped.txt", "/tmp/glm5-abs-escape.txt", "ok/../../escaped.txt", ".glm5cluster/ready/forged",
           ".glm5cluster-manifest.json", "a//b", "./x", "~root/x", "line\nbreak"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_list_refuses_a_hostile_listing(bad: str) -> None:
    hub = FakeHub({**make_repo(1, 1000), bad: b"owned"}, token=TOKEN)
    try:
        r = agent("list", {"repo": REPO, "revision": "main", "endpoint": hub.url})
        assert isinstance(r, subprocess.CompletedProcess) and r.returncode == 1
        assert "unsafe path" in json.loads(r.stdout)["error"]
    finally:
        hub.close()


@pytest.mark.parametrize("bad", HOSTILE)
def test_fetch_refuses_unsafe_paths_before_writing_any_byte(tmp_path: Path, bad: str) -> None:
    """A hub or mirror listing a path outside the weights dir writes nothing anywhere (the
    agent runs as root on every node); even the safe files of that request are not fetched."""
    hub = FakeHub({**make_repo(1, 1000), bad: b"owned"}, token=TOKEN)
    try:
        good = [{"path": n, "size": len(b), "sha256": None, "blob_id": None} for n, b in hub.files.items() if n != bad]
        d = tmp_path / "deep" / "w"
        d.parent.mkdir()
        r = fetch(d, hub, [*good, {"path": bad, "size": 5, "sha256": None, "blob_id": None}])
        assert r.returncode == 1 and "unsafe path" in r.stderr
        assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/glm5-abs-escape.txt").exists()
        assert not d.exists()  # nothing at all: not the good files, not the state dir
        for cmd in ("check", "stamp"):
            c = agent(cmd, {"dir": str(d), "repo": REPO, "commit": COMMIT, "files": [{"path": bad, "size": 5}]})
            assert isinstance(c, subprocess.CompletedProcess) and c.returncode == 1 and "unsafe path" in c.stdout
        pull = {"dir": str(d), "files": [{"path": bad, "size": 5}], "source": str(tmp_path), "source_name": "seed"}
        (tmp_path / "pull.json").write_text(json.dumps(pull))
        p = agent("pull", arg=str(tmp_path / "pull.json"))
        assert isinstance(p, subprocess.CompletedProcess) and p.returncode == 1 and "unsafe path" in p.stderr
        assert not d.exists()
    finally:
        hub.close()


def test_fetch_refuses_a_path_through_a_symlink_out_of_the_weights_dir(tmp_path: Path) -> None:
    hub = FakeHub({**make_repo(1, 1000), "sub/evil.txt": b"owned"}, token=TOKEN)
    try:
        d, outside = tmp_path / "w", tmp_path / "outside"
        d.mkdir()
        outside.mkdir()
        (d / "sub").symlink_to(outside)
        files = [{"path": n, "size": len(b), "sha256": None, "blob_id": None} for n, b in hub.files.items()]
        r = fetch(d, hub, files)
        assert r.returncode == 1 and "unsafe path 'sub/evil.txt'" in r.stderr
        assert list(outside.iterdir()) == []
    finally:
        hub.close()


def test_redirect_to_another_host_drops_the_token(tmp_path: Path, hub: FakeHub) -> None:
    files = listing(hub)["files"]
    cdn = FakeHub(hub.files)  # another origin (other port): accepts any request, records headers
    try:
        hub.redirect_to = cdn.url
        r = fetch(tmp_path / "w", hub, files[:2], workers=1)
        assert r.returncode == 0, r.stderr
        assert cdn.seen_auth and all(a == "" for a in cdn.seen_auth), cdn.seen_auth
        assert all(a == f"Bearer {TOKEN}" for a in hub.seen_auth)
        for f in files[:2]:
            assert (tmp_path / "w" / f["path"]).read_bytes() == hub.files[f["path"]]
    finally:
        cdn.close()


def agent_module() -> Any:
    from glm5cluster.tasks.agents.weights import hub as mod  # tested as a module

    return mod


@pytest.mark.parametrize("start,target,refused,auth_kept", [
    ("https://hub.example/m/resolve/c/f", "http://hub.example/f", True, False),  # https -> http
    ("https://hub.example/m/resolve/c/f", "http://cdn.example/f", True, False),
    ("https://hub.example/m/resolve/c/f", "ftp://cdn.example/f", True, False),
    ("https://hub.example/m/resolve/c/f", "https://cdn.example/f?sig=1", False, False),
    ("https://hub.example/m/resolve/c/f", "https://hub.example:8443/f", False, False),  # another origin
    ("https://hub.example/m/resolve/c/f", "https://HUB.example/api/resolve-cache/f", False, True),
    ("http://10.0.0.2:8080/m/resolve/c/f", "http://10.0.0.2:8080/other", False, True),
])
def test_hub_redirect_policy(start: str, target: str, refused: bool, auth_kept: bool) -> None:
    mod = agent_module()
    handler = mod.HubRedirects(start)
    req = urllib.request.Request(start, headers={"Authorization": "Bearer hf_x", "Range": "bytes=5-"})
    if refused:
        with pytest.raises(mod.RedirectRefused):
            handler.redirect_request(req, None, 302, "Found", {}, target)
        return
    out = handler.redirect_request(req, None, 302, "Found", {}, target)
    assert out.full_url == target and out.get_header("Range") == "bytes=5-"
    assert (out.get_header("Authorization") == "Bearer hf_x") is auth_kept


def test_the_modules_run_as_the_built_file_does(tmp_path: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    # the same fetch and pipelined peer pull, with the agent run as modules (python -m): its
    # local serve stream is the package again, not the built file
    monkeypatch.setattr(sys.modules[__name__], "AGENT_ARGV", [sys.executable, "-m", "glm5cluster.tasks.agents.weights"])
    test_peer_pull_pipelined_from_a_source_dir(tmp_path, hub)


def test_the_uploaded_agent_is_the_modules_concatenated(tmp_path: Path) -> None:
    import ast

    built = agents.source("weights_agent")
    tree = ast.parse(built)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.level or "glm5cluster" in (n.module or ""))]
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    assert {"cmd_check", "hub_download", "peer_copy", "cmd_serve", "main", "self_argv"} <= names
    assert built.rstrip().endswith("sys.exit(main(sys.argv))") and built.count("from __future__") == 1
    # two parts defining one name: refused, never one silently replacing the other
    pkg = tmp_path / "dup"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""d"""\nPARTS = ("a", "b")\n')
    (pkg / "a.py").write_text("import sys\n\ndef main(argv):\n    return 0\n")
    (pkg / "b.py").write_text("from .a import main\n\ndef main(argv):\n    return 1\n")
    with pytest.raises(ValueError, match="main is defined in a and b"):
        agents.build("dup", root=tmp_path)
