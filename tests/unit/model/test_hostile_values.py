"""Hostile strings (spaces, quotes, `;`, `$(...)`, newline, backtick) in every inventory string field.

Each field either refuses them with a one-line, located error, or (free text) keeps them
verbatim so the renderers can prove they arrive as inert data (tests/unit/render, sglang).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from glm5cluster.errors import InputProblems
from glm5cluster.model.loader import load_inventory
from glm5cluster.model.yaml_source import format_path

HOSTILE = [" ", "'", '"', ";", "$(id)", "\n", "`"]
SHELL_MSG = "must not contain spaces, quotes or shell characters"

BASE: dict[str, Any] = {
    "version": 1,
    "cluster": {"name": "demo", "gpu": {"kind": "H200", "count": 8}, "interface": "eth0"},
    "ssh": {"user": "ubuntu", "jump_host": "bastion", "identity_file": "k", "known_hosts": "kh",
            "config_file": "cfg"},
    "hosts": [{"name": "h0", "address": "192.0.2.1", "cluster_address": "10.0.0.1", "interface": "eth1",
               "labels": {"rack": "r1"}, "ssh": {"user": "root", "jump_host": "jump"}},
              {"name": "router", "address": "192.0.2.9"}],
    "groups": {"workers": ["h0"]},
    "model": {"repo": "zai-org/GLM-5-FP8", "revision": "main", "weights_dir": "/data/glm5",
              "source": {"kind": "hub", "endpoint": "https://hub.example", "token_env": "HF_TOKEN",
                         "seed_host": "h0"}},
    "serving": {"sglang_version": "0.5.23", "image": "lmsysorg/sglang:v0.5.23", "venv_path": "/opt/venv",
                "package_index": "https://pypi.example/simple", "shm_size": "32g",
                "features": {"served_model_name": "glm-5"}, "extra_args": ["--context-length", "4096"],
                "env": {"NCCL_DEBUG": "INFO"},
                "secrets": {"hf_token_env": "HF_TOKEN", "api_key_env": "API_KEY"}},
    "replicas": {"count": 1, "router": {"host": "router"}},
    "stack": {"nvidia": {"driver_branch": "580", "cuda_repo": "https://cuda.example/repo",
                         "container_toolkit_repo": "https://ctk.example/repo",
                         "container_toolkit_version": "1.17.8"},
              "amd": {"rocm_version": "7.2.0", "repo": "https://rocm.example/repo"},
              "registry_mirror": "registry.example:5000",
              "insecure_registries": ["registry.lab:5000"]},
}

# field path -> how a hostile fragment is placed in an otherwise good value ("{}" marks the spot)
STRICT: dict[tuple[str | int, ...], str] = {
    ("cluster", "name"): "de{}mo",
    ("cluster", "interface"): "eth{}0",
    ("ssh", "user"): "ubu{}ntu",
    ("ssh", "jump_host"): "bas{}tion",
    ("hosts", 0, "name"): "h{}0",
    ("hosts", 0, "address"): "192.0.2.1{}",
    ("hosts", 0, "cluster_address"): "10.0.0.1{}",
    ("hosts", 0, "interface"): "eth{}1",
    ("hosts", 0, "labels", "rack"): "r{}1",
    ("hosts", 0, "ssh", "user"): "ro{}ot",
    ("hosts", 0, "ssh", "jump_host"): "ju{}mp",
    ("groups", "workers", 0): "h{}0",
    ("model", "revision"): "ma{}in",
    ("model", "source", "endpoint"): "https://hub.example/{}x",
    ("model", "source", "token_env"): "HF{}TOKEN",
    ("model", "source", "seed_host"): "h{}0",
    ("serving", "sglang_version"): "0.5.23{}",
    ("serving", "image"): "lmsysorg/sglang:{}v1",
    ("serving", "venv_path"): "/opt/ve{}nv",
    ("serving", "package_index"): "https://pypi.example/{}simple",
    ("serving", "shm_size"): "32{}g",
    ("serving", "features", "served_model_name"): "glm{}5",
    ("serving", "secrets", "hf_token_env"): "HF{}TOKEN",
    ("serving", "secrets", "api_key_env"): "API{}KEY",
    ("replicas", "router", "host"): "rou{}ter",
    ("stack", "nvidia", "driver_branch"): "58{}0",
    ("stack", "nvidia", "cuda_repo"): "https://cuda.example/{}repo",
    ("stack", "nvidia", "container_toolkit_repo"): "https://ctk.example/{}repo",
    ("stack", "nvidia", "container_toolkit_version"): "1.17{}.8",
    ("stack", "amd", "rocm_version"): "7.2{}.0",
    ("stack", "amd", "repo"): "https://rocm.example/{}repo",
    ("stack", "registry_mirror"): "registry{}.example",
    ("stack", "insecure_registries", 0): "registry{}.lab",
}
# mapping keys that must be tame: (path of the mapping, existing key to rename)
STRICT_KEYS = [(("hosts", 0, "labels"), "rack"), (("serving", "env"), "NCCL_DEBUG"), (("groups",), "workers")]
# free text: kept verbatim, only control characters (newline) refused
FREE_TEXT: dict[tuple[str | int, ...], str] = {
    ("model", "weights_dir"): "/data/my models/{}",
    ("serving", "env", "NCCL_DEBUG"): "INFO {}",
    ("serving", "extra_args", 1): "4096{}",
    ("ssh", "identity_file"): "my keys/{}id",
    ("ssh", "known_hosts"): "known {}hosts",
    ("ssh", "config_file"): "ssh {}config",
}


def put(data: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    out = copy.deepcopy(data)
    cur: Any = out
    for comp in path[:-1]:
        cur = cur[comp]
    cur[path[-1]] = value
    return out


def rename_key(data: dict[str, Any], path: tuple[str | int, ...], old: str, new: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    cur: Any = out
    for comp in path:
        cur = cur[comp]
    cur[new] = cur.pop(old)
    return out


def load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_inventory(path)


def refused(tmp_path: Path, data: dict[str, Any], where: str) -> str:
    with pytest.raises(InputProblems) as info:
        load(tmp_path, data)
    hits = [p for p in info.value.problems if p.path == where]
    assert hits, f"no problem at {where}: {[str(p) for p in info.value.problems]}"
    for p in info.value.problems:
        assert p.line is not None and "\n" not in str(p)
    return str(hits[0])


def test_base_is_valid(tmp_path: Path) -> None:
    assert load(tmp_path, BASE).inventory.cluster.name == "demo"


@pytest.mark.parametrize("path", list(STRICT), ids=[format_path(p) for p in STRICT])
@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_strict_fields_refuse_hostile_values(tmp_path: Path, path: tuple[str | int, ...], bad: str) -> None:
    message = refused(tmp_path, put(BASE, path, STRICT[path].format(bad)), format_path(path))
    assert SHELL_MSG in message


@pytest.mark.parametrize(("mapping", "key"), STRICT_KEYS, ids=[format_path(m) for m, _ in STRICT_KEYS])
@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_strict_keys_refuse_hostile_names(tmp_path: Path, mapping: tuple[str | int, ...], key: str,
                                          bad: str) -> None:
    new = f"K{bad}K"
    message = refused(tmp_path, rename_key(BASE, mapping, key, new), format_path(mapping + (new,)))
    assert SHELL_MSG in message and "(as a key)" in message


# weights_dir also travels inside an authorized_keys command="..." option: no " or \ there
FORCED_COMMAND_UNSAFE = {("model", "weights_dir"): {'"', "\\"}}
VERBATIM = [(p, b) for p in FREE_TEXT for b in HOSTILE if b != "\n" and b not in FORCED_COMMAND_UNSAFE.get(p, ())]


@pytest.mark.parametrize(("path", "bad"), VERBATIM, ids=[f"{format_path(p)}-{b!r}" for p, b in VERBATIM])
def test_free_text_keeps_hostile_values_verbatim(tmp_path: Path, path: tuple[str | int, ...], bad: str) -> None:
    value = FREE_TEXT[path].format(bad)
    inv = load(tmp_path, put(BASE, path, value)).inventory
    assert inv.model_dump(mode="python")[path[0]] is not None
    cur: Any = inv.model_dump()
    for comp in path:
        cur = cur[comp]
    assert cur == value


@pytest.mark.parametrize("path", list(FREE_TEXT), ids=[format_path(p) for p in FREE_TEXT])
@pytest.mark.parametrize("bad", ["\n", "\r", "\x00", "\x1b[31m"], ids=repr)
def test_free_text_refuses_control_characters(tmp_path: Path, path: tuple[str | int, ...], bad: str) -> None:
    message = refused(tmp_path, put(BASE, path, FREE_TEXT[path].format(bad)), format_path(path))
    assert "control characters" in message


def test_accepted_hostile_values_reach_the_records_verbatim(tmp_path: Path) -> None:
    nasty = "it's \"quoted\"; $(id) `uname` & | > spaces  \\n"
    data = put(BASE, ("model", "weights_dir"), "/data/GLM 5/" + nasty.replace('"', "").replace("\\", ""))
    data = put(data, ("serving", "env", "NCCL_DEBUG"), nasty + "\t")  # a tab is fine in text
    data = put(data, ("serving", "extra_args"), ["--json-model-override-args", '{"a": "b c"}', nasty])
    data = put(data, ("ssh", "identity_file"), "keys/" + nasty)
    loaded = load(tmp_path, data)
    inv = loaded.inventory
    assert inv.model.weights_dir == "/data/GLM 5/" + nasty.replace('"', "").replace("\\", "")
    assert inv.serving.env["NCCL_DEBUG"] == nasty + "\t"
    assert inv.serving.extra_args == ["--json-model-override-args", '{"a": "b c"}', nasty]
    assert loaded.nodes[0].ssh.identity_file == str(tmp_path / ("keys/" + nasty))
