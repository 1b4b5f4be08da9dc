"""The inventory schema: frozen, typed records; unknown keys are errors.

Every field is documented in ``inventory/README.md`` (a test keeps the two in step) and carries
a description that ``glm5cluster schema`` prints in the JSON Schema. Cross-field rules that need
the hardware catalog or the topology live in ``model/catalog.py`` and ``topology.py``; the
checks that need neither live in ``model/checks.py``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from glm5cluster.model.addresses import (
    check_host,
    check_node_path,
    check_requirement,
    check_revision,
)
from glm5cluster.model.images import release_of_image

# Strict scalars: YAML `true` is not the number 1, and "yes" is not a boolean.
Bool = StrictBool

# Names end up in unit names, container names, file names and log prefixes: keep them tame.
NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
Name = Annotated[str, StringConstraints(pattern=NAME_RE)]
# Host-ish values: DNS names, IPv4, IPv6 literals. No spaces, quotes or shell metacharacters.
HOST_RE = r"^[A-Za-z0-9:]([A-Za-z0-9._:-]{0,252})$"
HostAddr = Annotated[str, StringConstraints(pattern=HOST_RE)]
IFACE_RE = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,14}$"
Interface = Annotated[str, StringConstraints(pattern=IFACE_RE)]
ENV_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_RE)]
# Absolute POSIX paths on the nodes, without control characters (spaces and quotes are data).
PATH_RE = r"^(/|~/)[^\x00-\x1f\x7f]*$"
AbsPath = Annotated[str, StringConstraints(pattern=PATH_RE, max_length=4096)]
# Paths that become program paths (a venv): no spaces or shell characters at all.
SAFE_PATH_RE = r"^/[A-Za-z0-9._/+-]{0,4095}$"
SafePath = Annotated[str, StringConstraints(pattern=SAFE_PATH_RE)]
# Local files (identity, known_hosts, ssh config): absolute, ~/..., or relative to the inventory file.
LOCAL_PATH_RE = r"^[^\x00-\x1f\x7f]{1,4096}$"
LocalPath = Annotated[str, StringConstraints(pattern=LOCAL_PATH_RE)]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Requirement = Annotated[str, StringConstraints(max_length=500), AfterValidator(check_requirement)]
LABEL_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_RE)]
LABEL_VALUE_RE = r"^[A-Za-z0-9_.-]{0,63}$"
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_RE)]
USER_RE = r"^[a-z_][a-z0-9_-]{0,31}$"
UserName = Annotated[str, StringConstraints(pattern=USER_RE)]
Fingerprint = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{40}$")]  # OpenPGP v4, 40 hex digits
URL_RE = r"^(https?|file)://[^\s'\"`$;\\|<>(){}]+$"
Url = Annotated[str, StringConstraints(pattern=URL_RE)]
ENDPOINT_RE = r"^https?://[A-Za-z0-9._:\[\]-]+(/[A-Za-z0-9._~/-]*)?$"
JUMP_RE = r"^([a-z_][a-z0-9_-]*@)?[A-Za-z0-9][A-Za-z0-9._:-]*(:\d{1,5})?$"
REVISION_RE = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"
SERVED_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$"
VERSION_RE = r"^[0-9]+\.[0-9]+\.[0-9]+([.a-z0-9+-]*)$"
IMAGE_RE = r"^[a-z0-9][a-z0-9._/:@-]{0,254}$"
SIZE_RE = r"^[0-9]+[kmgKMG]?$"
REGISTRY_RE = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
# Free text that travels as one argv element or one env value: anything but control characters
# (a newline would end a line of an env file or a systemd unit); tab is allowed.
TEXT_RE = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"
FLAG_RE = r"^--[a-z0-9][a-z0-9-]*$"
Text = Annotated[str, StringConstraints(pattern=TEXT_RE, max_length=4096)]


class Record(BaseModel):
    """Base of every inventory record: frozen, unknown keys refused, strict-ish types."""

    # defer_build: a model's validator is built on first use, not at import (start-up cost:
    # only the models a command validates are built; benchmarks/results/startup.md).
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False, defer_build=True)


class GpuKind(StrEnum):
    H100 = "H100"
    H200 = "H200"
    B200 = "B200"
    MI300X = "MI300X"
    MI325X = "MI325X"
    MI355X = "MI355X"
    # every fact about a kind (vendor, memory, tp...) is in model/catalog.py (``gpu_profile``)


class Precision(StrEnum):
    FP8 = "fp8"
    BF16 = "bf16"


class Runtime(StrEnum):
    DOCKER = "docker"
    VENV = "venv"


class SshSettings(Record):
    """SSH settings: cluster-wide defaults (top-level `ssh`) and per-host overrides (`hosts[].ssh`).
    Unset fields inherit; `~/.ssh/config` (or `config_file`) is honoured."""

    user: UserName | None = Field(default=None, description="Login user (default root; non-root users run privileged commands through sudo -n).")
    port: Port | None = Field(default=None, description="SSH port (default 22).")
    identity_file: LocalPath | None = Field(default=None, description="Private key file on this machine; relative paths are relative to the inventory file, ~ expands.")
    known_hosts: LocalPath | None = Field(default=None, description="known_hosts file to check host keys against (default ~/.ssh/known_hosts); unknown keys are refused.")
    jump_host: Annotated[str, StringConstraints(pattern=JUMP_RE)] | None = Field(default=None, description="Bastion to hop through: [user@]host[:port].")
    connect_timeout: Annotated[float, Strict(), Field(gt=0, le=600)] | None = Field(default=None, description="Seconds to wait for the SSH connection (default 10).")
    command_timeout: Annotated[float, Strict(), Field(gt=0)] | None = Field(default=None, description="Seconds a command may run when its work has no size of its own (default: 300; package installs, image pulls and weight checks carry their own limits).")
    config_file: LocalPath | None = Field(default=None, description="ssh_config file to honour (default ~/.ssh/config).")
    sudo: Bool | None = Field(default=None, description="Run privileged commands through sudo -n even as root (default false; always true for non-root users).")


class GpuSpec(Record):
    """The GPUs of a host: kind and how many."""

    kind: GpuKind = Field(description="GPU model: H100, H200, B200, MI300X, MI325X or MI355X.")
    count: Annotated[int, Strict(), Field(ge=1, le=16)] = Field(default=8, description="GPUs per host.")


class HostSpec(Record):
    """One GPU server (or the router host)."""

    name: Name = Field(description="Unique host name: lowercase letters, digits and '-', 1-40 characters.")
    address: HostAddr = Field(description="SSH address: DNS name, IPv4 or IPv6 literal (no brackets).")
    cluster_address: HostAddr | None = Field(default=None, description="Address on the cluster network that NCCL/Gloo and the dist-init rendezvous use (default: `address`).")
    interface: Interface | None = Field(default=None, description="Cluster-network interface (NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME); default `cluster.interface`; neither set: each node gets the interface its route to node 0 uses (found at launch).")
    gpu: GpuSpec | None = Field(default=None, description="GPU kind and count of this host (default `cluster.gpu`).")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, description="Free key/value labels (letters, digits, '_', '.', '-').")
    ssh: SshSettings = Field(default_factory=SshSettings, description="Per-host SSH overrides of the top-level `ssh`.")

    @field_validator("address", "cluster_address")
    @classmethod
    def _ip_literal(cls, v: str | None) -> str | None:
        return None if v is None else check_host(v)


class ClusterSpec(Record):
    """The cluster as a whole, and defaults for its hosts."""

    name: Name = Field(description="Cluster name (used in unit, container and file names).")
    gpu: GpuSpec | None = Field(default=None, description="Default GPU kind and count for hosts that set none.")
    interface: Interface | None = Field(default=None, description="Default cluster-network interface for hosts that set none.")


class HubSource(Record):
    """Download the weights from the Hugging Face hub (or a mirror of it)."""

    kind: Literal["hub"] = Field(default="hub", description="`hub`: download from the Hugging Face hub.")
    endpoint: Annotated[str, StringConstraints(pattern=ENDPOINT_RE)] | None = Field(default=None, description="Hub endpoint (HF_ENDPOINT), e.g. a mirror; default huggingface.co.")
    token_env: EnvName | None = Field(default=None, description="Name of the environment variable holding the hub token (default `serving.secrets.hf_token_env`).")
    mode: Literal["fanout", "each"] = Field(default="fanout", description="`fanout`: one host downloads, then copies to the others; `each`: every host downloads.")
    seed_host: Name | None = Field(default=None, description="Host that downloads first in `fanout` mode (default: the first host).")
    stall_timeout: Annotated[float, Strict(), Field(gt=0)] = Field(default=120.0, description="Seconds without download progress before a retry.")
    retries: Annotated[int, Strict(), Field(ge=0, le=50)] = Field(default=5, description="Download retries before giving up.")
    insecure: Bool = Field(default=False, description="Allow a plain-http `endpoint` (trusted networks only; https is required otherwise).")


class PathSource(Record):
    """The weights are already in `model.weights_dir` on every node (shared or pre-copied)."""

    kind: Literal["path"] = Field(description="`path`: weights already present; only verified.")


WeightsSource = Annotated[HubSource | PathSource, Field(discriminator="kind")]

MODEL_REPOS = {"zai-org/GLM-5": Precision.BF16, "zai-org/GLM-5-FP8": Precision.FP8}


class ModelSpec(Record):
    """Which GLM-5 checkpoint, and where it lives on the nodes."""

    repo: Literal["zai-org/GLM-5", "zai-org/GLM-5-FP8"] = Field(description="Hub repository: zai-org/GLM-5 (BF16) or zai-org/GLM-5-FP8.")
    precision: Precision | None = Field(default=None, description="fp8 or bf16; derived from `repo` when omitted, must agree with it when given.")
    revision: Annotated[str, StringConstraints(pattern=REVISION_RE)] = Field(default="main", description="Pinned commit (40 hex digits) or a branch/tag resolved at deploy time.")
    weights_dir: AbsPath = Field(description="Absolute directory on every node for the weights (mounted at the same path in containers).")
    source: WeightsSource = Field(default_factory=HubSource, description="Where the weights come from: `kind: hub` or `kind: path`.")

    @field_validator("precision")
    @classmethod
    def _precision_matches(cls, v: Precision | None, info: ValidationInfo) -> Precision | None:
        repo = info.data.get("repo")
        derived = MODEL_REPOS.get(repo) if isinstance(repo, str) else None
        if v is not None and derived is not None and v != derived:
            raise ValueError(
                f"precision {v.value} contradicts repo {repo} (which is {derived.value}); "
                "drop `precision` or pick the other repo"
            )
        return v

    @field_validator("weights_dir")
    @classmethod
    def _absolute(cls, v: str) -> str:
        return check_node_path(v, "weights_dir")

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str) -> str:
        return check_revision(v)

    @property
    def effective_precision(self) -> Precision:
        return MODEL_REPOS[self.repo]

    @property
    def pinned(self) -> bool:
        return bool(re.fullmatch(r"[0-9a-f]{40}", self.revision))


class Features(Record):
    """SGLang features; the defaults follow the SGLang cookbook for GLM-5."""

    speculative_decoding: Bool | None = Field(default=None, description="EAGLE/MTP speculative decoding; default: as the cookbook has it for the hardware (on for NVIDIA, unavailable on AMD).")
    dp_attention: Bool = Field(default=False, description="DP attention (throughput at high concurrency; uses dist-init port +1..+6).")
    index_cache: Bool = Field(default=False, description="IndexCache override (GLM-5-FP8 only; small accuracy loss).")
    served_model_name: Annotated[str, StringConstraints(pattern=SERVED_NAME_RE)] | None = Field(default=None, description="Model id the API answers to (default: the model repo).")
    reasoning_parser: Bool = Field(default=True, description="Add --reasoning-parser glm45.")
    tool_call_parser: Bool = Field(default=True, description="Add --tool-call-parser glm47.")
    enable_metrics: Bool = Field(default=True, description="Add --enable-metrics (Prometheus /metrics).")


class Secrets(Record):
    """Secrets are referenced by environment-variable *name* only; values never enter the file."""

    hf_token_env: EnvName | None = Field(default=None, description="Name of the local environment variable holding the Hugging Face token (e.g. HF_TOKEN).")
    api_key_env: EnvName | None = Field(default=None, description="Name of the local environment variable holding the API key the server requires.")


class ServeSpec(Record):
    """How SGLang runs on the nodes."""

    runtime: Runtime = Field(default=Runtime.VENV, description="`venv` (systemd unit running a Python venv) or `docker`.")
    sglang_version: Annotated[str, StringConstraints(pattern=VERSION_RE)] = Field(default="0.5.23", description="SGLang release (one of those in docs/sglang-releases.md); picks the launch-flag profile and the package to install. With the docker runtime and no version, the release the image tag names (`v0.5.10-cu130` is 0.5.10); an image whose tag names none (`glm5-hopper`, `latest`, a digest) needs it written.")
    image: Annotated[str, StringConstraints(pattern=IMAGE_RE)] | None = Field(default=None, description="Container image for the docker runtime (default: chosen for the hardware and version).")
    venv_path: SafePath = Field(default="/opt/glm5cluster/venv", description="Virtual environment on the nodes for the venv runtime.")
    package_index: Url | None = Field(default=None, description="Python package index URL for the venv runtime (default PyPI).")
    extra_packages: list[Requirement] = Field(default_factory=list, description="More pip requirements (PEP 508, no URLs or pip options) installed into the venv with sglang, from the same index with the same pip flags, e.g. `sgl-eval==0.1.3` for `bench`'s MMLU suite or `sglang[bench]==0.5.23` for the benchmark clients' dependencies. venv runtime only (the docker image is what it is).")
    http_port: Port = Field(default=30000, description="HTTP port of the server (node 0 serves the API).")
    dist_init_port: Port = Field(default=20000, description="Rendezvous port on node 0 (--dist-init-addr).")
    features: Features = Field(default_factory=Features, description="SGLang features.")
    extra_args: list[Text] = Field(default_factory=list, description="Extra SGLang arguments, one list item per argv element, passed verbatim.")
    override_flags: list[Annotated[str, StringConstraints(pattern=FLAG_RE)]] = Field(default_factory=list, description="Cookbook flags that `extra_args` may replace on purpose (e.g. `--mem-fraction-static`); any other cookbook flag set in `extra_args` is refused. `plan` prints each override.")
    insecure: Bool = Field(default=False, description="Allow a plain-http `package_index` (trusted networks only; https is required otherwise).")
    env: dict[EnvName, Text] = Field(default_factory=dict, description="Extra environment for the server (e.g. NCCL_IB_GID_INDEX: \"3\"; unset, a RoCE node gets its own RoCE v2 GID index at launch); values are data, never secrets.")
    secrets: Secrets = Field(default_factory=Secrets, description="Secrets, by environment-variable name only.")
    readiness_timeout: Annotated[float, Strict(), Field(gt=0)] = Field(default=3600.0, description="Seconds to wait for node 0 to become ready.")
    shm_size: Annotated[str, StringConstraints(pattern=SIZE_RE)] = Field(default="32g", description="Shared memory size for the docker runtime (--shm-size).")
    memlock_unlimited: Bool = Field(default=True, description="Raise the locked-memory limit to unlimited for the server (venv: LimitMEMLOCK=infinity in the unit; docker: --ulimit memlock=-1). RDMA (InfiniBand/RoCE, GPUDirect) needs it: keep it true on real hosts. Set false only on nested-container sites that may not raise RLIMIT_MEMLOCK (no CAP_SYS_RESOURCE), such as the rehearsal lab's docker runtime.")
    image_archive: LocalPath | None = Field(default=None, description="Local `docker save` archive of the image (sites with no registry access): copied to every node and loaded instead of pulling.")

    @model_validator(mode="before")
    @classmethod
    def _release_from_image(cls, data: object) -> object:
        """Docker runtime, an image and no ``sglang_version``: the release the image tag names."""
        if not (isinstance(data, dict) and "sglang_version" not in data and data.get("runtime") == "docker"
                and isinstance(data.get("image"), str) and re.match(IMAGE_RE, data["image"])):
            return data  # (a malformed image is reported by its own field)
        release = release_of_image(data["image"])
        if release is None:
            raise ValueError(
                f"image {data['image']} does not name an SGLang release, so the launch flags cannot be "
                "chosen; write serving.sglang_version: the release the image contains")
        return {**data, "sglang_version": release}


class RouterSpec(Record):
    """An SGLang router in front of several replicas."""

    host: Name = Field(description="Name of the host (in `hosts`) that runs the router.")
    port: Port = Field(default=8000, description="Router HTTP port.")
    policy: Literal["cache_aware", "round_robin", "random", "power_of_two"] = Field(default="cache_aware", description="Load-balancing policy.")
    version: Annotated[str, StringConstraints(pattern=VERSION_RE)] = Field(default="0.3.2", description="The `sglang-router` package version installed on the router host (from `serving.package_index` or PyPI).")
    venv_path: SafePath = Field(default="/opt/glm5cluster/router-venv", description="Virtual environment of the router on the router host.")
    health_check_interval: Annotated[int, Field(ge=1, le=3600)] = Field(default=10, description="Seconds between the router's health checks of each replica (`--health-check-interval-secs`; 3 failures in a row mark a replica unhealthy).")


class ReplicasSpec(Record):
    """How many tensor-parallel groups to build, and the router in front of them."""

    count: Annotated[int, Strict(), Field(ge=1, le=64)] | None = Field(default=None, description="Number of replicas (default: as many as the hosts allow).")
    router: RouterSpec | None = Field(default=None, description="Optional router in front of the replicas.")


class NvidiaStack(Record):
    """NVIDIA driver and container toolkit."""

    driver_branch: Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")] = Field(default="580", description="NVIDIA driver branch (three digits).")
    open_kernel_modules: Bool | None = Field(default=None, description="Use the open kernel modules (default: as the hardware needs; always on Blackwell).")
    cuda_repo: Url | None = Field(default=None, description="Mirror of NVIDIA's CUDA repositories (the `compute/cuda/repos` tree): the driver, fabric manager and keyring come from `<url>/<distro>/<arch>/` (default: NVIDIA's own).")
    container_toolkit_repo: Url | None = Field(default=None, description="Mirror of `nvidia.github.io/libnvidia-container` (the container toolkit apt repository; default: NVIDIA's own).")
    insecure: Bool = Field(default=False, description="Allow plain-http `cuda_repo` / `container_toolkit_repo` mirrors (trusted networks only; https is required otherwise).")
    container_toolkit_version: Annotated[str, StringConstraints(pattern=r"^[0-9][0-9.a-z~+-]*$")] | None = Field(default=None, description="Pinned container toolkit version.")
    cuda_key_fingerprints: list[Fingerprint] | None = Field(default=None, min_length=1, description="OpenPGP fingerprints the CUDA repository key must have (a mirror re-signed with a site key); default: NVIDIA's (EB693B3035CD5710E231E123A4B469963BF863CC).")
    container_toolkit_key_fingerprints: list[Fingerprint] | None = Field(default=None, min_length=1, description="OpenPGP fingerprints the container toolkit repository key must have; default: NVIDIA's (C95B321B61E88C1809C4F759DDCAE044F796ECB0).")


class AmdStack(Record):
    """AMD ROCm stack."""

    rocm_version: Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")] = Field(default="7.2.0", description="ROCm version.")
    repo: Url | None = Field(default=None, description="ROCm apt repository URL (default AMD's).")
    insecure: Bool = Field(default=False, description="Allow a plain-http `repo` (trusted networks only; https is required otherwise).")


class StackSpec(Record):
    """The GPU software stack on the hosts."""

    manage: Bool = Field(default=True, description="Install/upgrade the GPU stack; false: verify only, never install.")
    nvidia: NvidiaStack = Field(default_factory=NvidiaStack, description="NVIDIA stack settings.")
    amd: AmdStack = Field(default_factory=AmdStack, description="AMD stack settings.")
    registry_mirror: Annotated[str, StringConstraints(pattern=REGISTRY_RE)] | None = Field(default=None, description="Container registry mirror (host[:port]).")
    insecure_registries: list[Annotated[str, StringConstraints(pattern=REGISTRY_RE)]] = Field(default_factory=list, description="Registries docker may reach over plain HTTP (host[:port]).")


class BenchTolerance(Record):
    """How far a benchmark may fall behind its baseline before `glm5cluster bench --gate` fails."""

    accuracy_points: Annotated[float, Field(ge=0, le=100)] = Field(default=2.0, description="Accuracy drop allowed, in absolute percentage points (GSM8K, MMLU).")
    throughput_pct: Annotated[float, Field(ge=0, le=100)] = Field(default=10.0, description="Throughput drop allowed, in percent (request, output and total tok/s).")
    tpot_pct: Annotated[float, Field(ge=0, le=1000)] = Field(default=10.0, description="Rise of the mean time per output token allowed, in percent.")


class BenchSpec(Record):
    """Settings of `glm5cluster bench` (the cookbook's benchmarks on the deployed cluster)."""

    tolerance: BenchTolerance = Field(default_factory=BenchTolerance, description="Regression tolerances for `bench --gate`.")
    gsm8k_data_path: LocalPath | None = Field(default=None, description="Local GSM8K test file (JSON lines with `question` and `answer`) copied to node 0, for sites that cannot download it; `--data-path` overrides.")
    sharegpt_path: LocalPath | None = Field(default=None, description="Local ShareGPT JSON for the serving suites' random dataset, copied to node 0 instead of downloading it; `--sharegpt-path` overrides.")
    mmlu_data_path: LocalPath | None = Field(default=None, description="Local MMLU file (sgl-eval's prepared test.jsonl) copied to node 0 instead of downloading it; `--mmlu-data-path` overrides.")


class PreflightSpec(Record):
    """Thresholds and pins of `glm5cluster preflight` (and the checks `up` runs before a launch)."""

    nics: Annotated[int, Strict(), Field(ge=0, le=64)] | None = Field(default=None, description="RDMA NICs per node that carry NCCL traffic (default: the active HCA ports at the node's highest rate, from ibstat). With nic_gbps it sets the expected inter-node all-reduce busbw (46 GB/s per 400G NIC, 24 per 200G, 12 per 100G).")
    nic_gbps: Annotated[int, Strict(), Field(ge=1, le=3200)] | None = Field(default=None, description="Line rate of each of those NICs in Gb/s (default: from ibstat).")
    min_busbw_gbps: Annotated[float, Field(gt=0)] | None = Field(default=None, description="Minimum inter-node all-reduce bus bandwidth (GB/s) of the NCCL gate; overrides the NIC-derived expectation.")
    min_local_busbw_gbps: Annotated[float, Field(gt=0)] | None = Field(default=None, description="Minimum all-reduce busbw among one node's GPUs (GB/s); default from the catalog (8xH200 431, 8xH100 460), none for other kinds.")
    fail_below_pct: Annotated[float, Field(gt=0, le=100)] = Field(default=80.0, description="The gate fails below this percentage of an expectation that comes from the catalog or the NICs (a min_* set here is used as is).")
    nccl_port: Port | None = Field(default=None, description="Rendezvous port of the NCCL probe on node 0 (default: serving.dist_init_port + 1000).")
    high_port: Port = Field(default=45000, description="Port in NCCL's ephemeral range tested with TCP both ways between every pair of nodes (NCCL and Gloo connect on random high ports).")
    nccl_timeout: Annotated[float, Strict(), Field(gt=0, le=3600)] = Field(default=180.0, description="Seconds the NCCL probe may take; a node that never joins is named when it runs out.")
    nccl_gate: Bool = Field(default=True, description="`up` runs the NCCL all-reduce gate before a replica's first launch (skip once with `up --skip-nccl`). False where the runtime has no working torch/NCCL, such as the rehearsal lab.")
    nccl_sizes: Annotated[str, StringConstraints(pattern=r"^[0-9]+[KMG]?(,[0-9]+[KMG]?)*$")] = Field(default="1M,64M,256M,1G", description="All-reduce message sizes of the NCCL probe (the gate judges the largest).")


class Inventory(Record):
    """A glm5cluster inventory: the GPU servers and the GLM-5 deployment to run on them."""

    model_config = ConfigDict(title="glm5cluster inventory")

    version: Literal[1] = Field(default=1, description="Inventory format version (1).")
    cluster: ClusterSpec = Field(description="Cluster name and host defaults.")
    ssh: SshSettings = Field(default_factory=SshSettings, description="SSH defaults for every host.")
    hosts: Annotated[list[HostSpec], Field(min_length=1)] = Field(description="The servers, in order; the first hosts become the head nodes.")
    groups: dict[Name, list[Name]] = Field(default_factory=dict, description="Named groups of host names.")
    model: ModelSpec = Field(description="The GLM-5 checkpoint.")
    serving: ServeSpec = Field(default_factory=ServeSpec, description="How SGLang runs.")
    replicas: ReplicasSpec = Field(default_factory=ReplicasSpec, description="Replica count and router.")
    stack: StackSpec = Field(default_factory=StackSpec, description="GPU software stack.")
    bench: BenchSpec = Field(default_factory=BenchSpec, description="Benchmark settings (`glm5cluster bench`).")
    preflight: PreflightSpec = Field(default_factory=PreflightSpec, description="Preflight thresholds and pins (`glm5cluster preflight`).")
