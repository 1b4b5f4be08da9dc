"""The example inventories name local key files (``~/.ssh/id_ed25519``, the lab's key) that
``plan`` checks for: every test here runs with a HOME where they exist."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE_KEYS = (".ssh/id_ed25519", ".glm5cluster/lab/default/id_ed25519",
                # the lab inventories' bench data files (`lab up` writes them)
                ".glm5cluster/lab/default/bench/gsm8k.jsonl", ".glm5cluster/lab/default/bench/sharegpt.json",
                ".glm5cluster/lab/default/bench/mmlu.jsonl")


@pytest.fixture(autouse=True)
def example_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    for rel in EXAMPLE_KEYS:
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text("placeholder key\n")
    monkeypatch.setenv("HOME", str(home))
    return home
