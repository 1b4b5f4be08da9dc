"""The lab's files on the machine: ``~/.glm5cluster/lab/<name>/`` (key pair, known_hosts, inventory)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from glm5cluster.errors import GlmError
from glm5cluster.lab.addresses import LAB_KEY_FINGERPRINT, mirror_endpoints
from glm5cluster.model.inventory import Inventory


def lab_home() -> Path:
    return Path(os.environ.get("GLM5CLUSTER_LAB_HOME", "~/.glm5cluster/lab")).expanduser()


def lab_dir(name: str) -> Path:
    return lab_home() / name


@dataclass(frozen=True)
class LabSettings:
    """What ``lab up`` was asked for; kept in ``lab.json`` so later calls reconcile to it."""

    name: str
    hosts: int
    gpu: str
    gpus_per_node: int
    subnet: str
    sudo_user_hosts: int = 0
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    mirror: bool = True  # start the mirror host (apt, registry, package index, model hub)
    hub_shards: int = 8
    hub_shard_mb: float = 4.0
    hub_rate_mbps: float = 0.0  # total cap of the simulated WAN link (0: none)
    hub_token: str = ""  # non-empty: the hub requires this bearer token (a gated repository)
    docker_on_demand: bool = False  # hosts start dockerd on first use (socket activation), not at boot
    # the inventory installs the benchmark clients' dependencies (sglang[bench], sgl-eval) and
    # names the lab's question files, so `glm5cluster bench` runs all four suites (`lab up` sets it)
    bench_clients: bool = False

    def save(self) -> None:
        path = lab_dir(self.name) / "lab.json"
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @staticmethod
    def load(name: str) -> LabSettings | None:
        path = lab_dir(name) / "lab.json"
        if not path.exists():
            return None
        return LabSettings(**json.loads(path.read_text()))


def ensure_key(name: str) -> tuple[Path, str]:
    """The lab key pair (made once per lab): the private key path and the public key text."""
    d = lab_dir(name)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = d / "id_ed25519"
    if not key.exists():
        subprocess.run(  # noqa: S603
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"glm5lab-{name}", "-f", str(key)],
            check=True,
        )
    key.chmod(0o600)
    return key, (d / "id_ed25519.pub").read_text().strip()


def write_known_hosts(name: str, keys: dict[str, list[str]]) -> Path:
    """known_hosts with every host's keys under its address (read from the host, never scanned)."""
    path = lab_dir(name) / "known_hosts"
    lines = [f"{addr} {k}" for addr, ks in sorted(keys.items()) for k in ks]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def home_relative(path: Path) -> str:
    """``~/...`` when under the home directory, so the inventory reads the same for every user."""
    home = Path.home()
    try:
        return "~/" + path.relative_to(home).as_posix()
    except ValueError:
        return str(path)


def inventory_data(s: LabSettings, hosts: list[tuple[str, str, str, int, bool]]) -> dict[str, object]:
    """The lab inventory; ``hosts`` holds (name, address, gpu kind, gpu count, sudo user)."""
    d = lab_dir(s.name)
    m = mirror_endpoints(s.subnet)
    host_entries: list[dict[str, object]] = []
    for hname, addr, kind, count, sudo_user in hosts:
        entry: dict[str, object] = {"name": hname, "address": addr}
        if kind != s.gpu or count != s.gpus_per_node:
            entry["gpu"] = {"kind": kind, "count": count}
        if sudo_user:
            entry["ssh"] = {"user": "glm5", "sudo": True}
        host_entries.append(entry)
    return {
        "version": 1,
        "cluster": {
            "name": f"lab-{s.name}"[:40].rstrip("-"),
            "gpu": {"kind": s.gpu, "count": s.gpus_per_node},
            "interface": "eth0",  # the lab network's NIC inside every host container
        },
        "ssh": {
            "user": "root",
            "identity_file": home_relative(d / "id_ed25519"),
            "known_hosts": home_relative(d / "known_hosts"),
            "connect_timeout": 10,
        },
        "hosts": host_entries,
        "model": {
            "repo": "zai-org/GLM-5",
            "weights_dir": "/srv/models/GLM-5",
            "source": {"kind": "hub", "endpoint": m.hub, "insecure": True},  # the lab mirror is plain http
        },
        "serving": {"runtime": "venv", "sglang_version": SIM_VERSION, "package_index": m.pypi, "insecure": True,
                    **({"extra_packages": list(BENCH_PACKAGES)} if s.bench_clients else {}),
                    "secrets": {"hf_token_env": "HF_TOKEN"}},
        **({"bench": {f: home_relative(d / "bench" / n) for f, n in BENCH_FILES.items()}} if s.bench_clients else {}),
        # no torch/NCCL in the lab's stand-in runtime: `up` skips the NCCL gate (preflight --nccl
        # is the way to run it by hand)
        "preflight": {"nccl_gate": False},
        # The mirror serves vendor-shaped trees, as a site mirror of the real repositories would:
        # cuda_repo mirrors https://developer.download.nvidia.com/compute/cuda/repos (the tasks
        # append <distro>/<arch>/), container_toolkit_repo mirrors
        # https://nvidia.github.io/libnvidia-container. There is no Debian mirror (air-gapped):
        # apt_mirror stays unset and the hosts' own sources are left alone.
        "stack": {
            "nvidia": {"cuda_repo": f"{m.apt}/cuda/repos", "container_toolkit_repo": f"{m.apt}/libnvidia-container",
                       # the mirror re-signs with the lab's own key: pin it instead of NVIDIA's
                       "cuda_key_fingerprints": [LAB_KEY_FINGERPRINT],
                       "container_toolkit_key_fingerprints": [LAB_KEY_FINGERPRINT],
                       "insecure": True},
            "registry_mirror": m.registry, "insecure_registries": [m.registry],
        },
    }


SIM_VERSION = "0.5.23"
# The benchmark clients' dependencies on the lab package index: the sim wheel's `bench` extra
# (the real clients' imports: aiohttp, numpy, ...) and sgl-eval, which the real 0.5.23 wheel's
# `test` extra pins for MMLU.
BENCH_PACKAGES = (f"sglang[bench]=={SIM_VERSION}", "sgl-eval==0.1.3")
# bench.* field -> file under the lab's folder, written from the simulator's own questions
BENCH_FILES = {"gsm8k_data_path": "gsm8k.jsonl", "sharegpt_path": "sharegpt.json", "mmlu_data_path": "mmlu.jsonl"}
QUESTIONS = Path(__file__).parent / "sim" / "sglang_sim" / "sglang" / "_sim" / "bench_questions.json"


def write_bench_files(name: str) -> Path:
    """The questions the simulated server answers, as the clients' local data files."""
    doc = json.loads(QUESTIONS.read_text())
    d = lab_dir(name) / "bench"
    d.mkdir(parents=True, exist_ok=True)
    (d / "gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in doc["gsm8k"]))
    (d / "mmlu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in doc["mmlu"]))
    # the random dataset only samples ShareGPT text for its prompts: one conversation per prompt
    # of the throughput suite (1000)
    share = [{"id": str(i), "conversations": [
        {"from": "human", "value": f"Please explain topic number {i} in a few clear sentences for a new reader."},
        {"from": "gpt", "value": "Sure, here is a short and clear explanation of the topic for you."}]}
        for i in range(1000)]
    (d / "sharegpt.json").write_text(json.dumps(share) + "\n")
    return d


def write_inventory(s: LabSettings, hosts: list[tuple[str, str, str, int, bool]]) -> Path:
    data = inventory_data(s, hosts)
    if s.bench_clients:
        write_bench_files(s.name)
    try:
        Inventory.model_validate(data)
    except Exception as e:  # a bug in this module, not the user's input
        raise GlmError(f"the lab inventory does not validate: {e}", hint="report this as a bug") from e
    path = lab_dir(s.name) / "inventory.yaml"
    header = (
        f"# The rehearsal lab `{s.name}`, written by `glm5cluster lab up` (rewritten on every lab up).\n"
        f"# {s.hosts} x {s.gpus_per_node} {s.gpu} on {s.subnet}; mirror endpoints are lab/addresses.py's.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path
