"""The lab model hub against the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get

from glm5cluster.lab.sim.hub.server import make_server, prepare_data, start_in_thread

SHARDS = 3
SHARD_BYTES = 512 * 1024
REPO = "zai-org/GLM-5-FP8"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hub")
    prepare_data(str(d), SHARDS, SHARD_BYTES)
    return d


def _serve(data: Path, **kw: object) -> Iterator[str]:
    srv = make_server(str(data), host="127.0.0.1", port=0, **kw)  # type: ignore[arg-type]
    start_in_thread(srv)
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def hub(data_dir: Path) -> Iterator[str]:
    yield from _serve(data_dir)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entries(lines: list[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            yield json.loads(line)
        except json.JSONDecodeError:  # the line being written right now
            continue


def _wait_logged(data: Path, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> bool:
    """Whether an entry ``match`` accepts appears in the hub's request log within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        lines = (data / "requests.log").read_text().splitlines()
        if any(match(e) for e in _entries(lines)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_snapshot_download_matches_listing(hub: str, tmp_path: Path, data_dir: Path) -> None:
    api = HfApi(endpoint=hub)
    info = api.model_info(REPO, files_metadata=True)
    assert info.sha and len(info.sha) == 40
    lfs = {s.rfilename: s for s in info.siblings or [] if s.lfs}
    assert len([n for n in lfs if n.endswith(".safetensors")]) == SHARDS
    out = Path(snapshot_download(REPO, revision=info.sha, local_dir=tmp_path / "dl", endpoint=hub))
    for name, sib in lfs.items():
        assert sib.lfs is not None and sha256(out / name) == sib.lfs.sha256
        assert (out / name).stat().st_size == sib.size
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["GlmMoeDsaForCausalLM"] and config["model_type"] == "glm_moe_dsa"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == SHARDS
    tree = {f.path: f for f in api.list_repo_tree(REPO, revision=info.sha)}
    assert tree["model-00001-of-00003.safetensors"].lfs.sha256 == lfs["model-00001-of-00003.safetensors"].lfs.sha256
    paths = api.get_paths_info(REPO, ["config.json"], revision="main")
    assert paths[0].size == (out / "config.json").stat().st_size
    assert _wait_logged(data_dir, lambda e: "/resolve/" in e["path"]), (data_dir / "requests.log").read_text()


def test_unknown_revision_and_repo(hub: str) -> None:
    api = HfApi(endpoint=hub)
    with pytest.raises(HfHubHTTPError):
        api.model_info(REPO, revision="0" * 40)
    with pytest.raises(HfHubHTTPError):
        api.model_info("zai-org/nope")


def test_range_resume_after_truncation(hub: str, tmp_path: Path, data_dir: Path) -> None:
    name = "model-00002-of-00003.safetensors"
    original = data_dir / "zai-org" / "GLM-5-FP8" / name
    part = tmp_path / name
    part.write_bytes(original.read_bytes()[:100_000])  # a download cut short
    with part.open("ab") as f:
        http_get(f"{hub}/{REPO}/resolve/main/{name}", f, resume_size=100_000,
                 expected_size=original.stat().st_size)
    assert sha256(part) == sha256(original)
    # The hub records a download once it has streamed the last byte (server.py `resolve`), so the
    # client may return before the server thread has written the entry: wait for it, bounded.
    assert _wait_logged(data_dir, lambda e: e["status"] == 206 and e["range"] == "bytes=100000-"
                        and e["path"].endswith(name)), (data_dir / "requests.log").read_text()


def test_token_required(data_dir: Path, tmp_path: Path) -> None:
    gen = _serve(data_dir, token="hf_lab_secret")
    url = next(gen)
    try:
        with pytest.raises(HfHubHTTPError) as err:
            HfApi(endpoint=url, token=False).model_info(REPO)
        assert err.value.response.status_code == 401
        info = HfApi(endpoint=url, token="hf_lab_secret").model_info(REPO)
        assert info.sha
        out = snapshot_download(REPO, local_dir=tmp_path / "t", endpoint=url, token="hf_lab_secret",
                                allow_patterns=["config.json"])
        assert (Path(out) / "config.json").exists()
        log = (data_dir / "requests.log").read_text()
        assert "hf_lab_secret" not in log
    finally:
        next(gen, None)


def test_rate_cap_slows_download(data_dir: Path, tmp_path: Path) -> None:
    rate_mbps = 16.0  # 2 MB/s; three 512 KiB shards -> about 0.8 s
    gen = _serve(data_dir, rate_mbps=rate_mbps)
    url = next(gen)
    try:
        start = time.monotonic()
        snapshot_download(REPO, local_dir=tmp_path / "slow", endpoint=url,
                          allow_patterns=["*.safetensors"])
        elapsed = time.monotonic() - start
    finally:
        next(gen, None)
    expected = SHARDS * SHARD_BYTES / (rate_mbps * 1e6 / 8)
    assert elapsed >= 0.5 * expected
