"""The kept results: round trip, two runs in one second, atomic writes, unreadable files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from glm5cluster.bench.history import History
from glm5cluster.bench.records import BenchRun, Suite

from .helpers import bench_run


def test_round_trip(tmp_path: Path) -> None:
    h = History("c", tmp_path)
    run = bench_run("20260101T000000Z", {Suite.LATENCY: {"output_throughput": 117.96}, Suite.GSM8K: {"accuracy": 0.955}})
    path = h.save(run)
    assert path == tmp_path / "c" / "20260101T000000Z.json"
    assert h.load() == [run]
    assert BenchRun.from_json(json.loads(path.read_text())) == run


def test_same_second_keeps_both(tmp_path: Path) -> None:
    h = History("c", tmp_path)
    a = bench_run("20260101T000000Z", {Suite.GSM8K: {"accuracy": 0.9}})
    b = bench_run("20260101T000000Z", {Suite.GSM8K: {"accuracy": 0.8}})
    assert h.save(a).name == "20260101T000000Z.json"
    assert h.save(b).name == "20260101T000000Z-2.json"
    assert [r.results[0].metrics["accuracy"] for r in h.load()] == [0.9, 0.8]


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = History("c", tmp_path)

    def boom(*_a: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        h.save(bench_run("20260101T000000Z", {Suite.GSM8K: {"accuracy": 0.9}}))
    assert list((tmp_path / "c").iterdir()) == []


def test_unreadable_files_are_skipped(tmp_path: Path) -> None:
    h = History("c", tmp_path)
    h.save(bench_run("20260101T000000Z", {Suite.GSM8K: {"accuracy": 0.9}}))
    (tmp_path / "c" / "20260102T000000Z.json").write_text("{half")
    assert len(h.load()) == 1
    assert [p.name for p in h.unreadable()] == ["20260102T000000Z.json"]
