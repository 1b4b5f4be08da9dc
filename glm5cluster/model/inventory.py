"""The inventory schema: frozen, typed records; unknown keys are errors.

Every field is documented in ``inventory/README.md``. Cross-field rules that need the
hardware catalog or the topology live in ``model/catalog.py`` and ``topology.py``.
"""

from __future__ import annotations

import ipaddress
import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

# Names end up in unit names, container names, file names and log prefixes: keep them tame.
NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
Name = Annotated[str, StringConstraints(pattern=NAME_RE)]
# Host-ish values: DNS names, IPv4, IPv6 literals. No spaces, quotes or shell metacharacters.
HOST_RE = r"^[A-Za-z0-9]([A-Za-z0-9._:-]{0,252})$"
HostAddr = Annotated[str, StringConstraints(pattern=HOST_RE)]
IFACE_RE = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,14}$"
Interface = Annotated[str, StringConstraints(pattern=IFACE_RE)]
ENV_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_RE)]
# Absolute POSIX paths without control characters.
PATH_RE = r"^(/|~/)[^\x00-\x1f\x7f]*$"
AbsPath = Annotated[str, StringConstraints(pattern=PATH_RE, max_length=4096)]
# Local files (identity, known_hosts, ssh config): absolute, ~/..., or relative to the inventory file.
LOCAL_PATH_RE = r"^[^\x00-\x1f\x7f]{1,4096}$"
LocalPath = Annotated[str, StringConstraints(pattern=LOCAL_PATH_RE)]
Port = Annotated[int, Field(ge=1, le=65535)]
LABEL_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_RE)]
LabelValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{0,63}$")]
USER_RE = r"^[a-z_][a-z0-9_-]{0,31}$"
UserName = Annotated[str, StringConstraints(pattern=USER_RE)]


class Record(BaseModel):
    """Base of every inventory record: frozen, unknown keys refused, strict-ish types."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class GpuKind(str, Enum):
    H100 = "H100"
    H200 = "H200"
    B200 = "B200"
    MI300X = "MI300X"
    MI325X = "MI325X"
    MI355X = "MI355X"

    @property
    def vendor(self) -> Literal["nvidia", "amd"]:
        return "amd" if self.value.startswith("MI") else "nvidia"


class Precision(str, Enum):
    FP8 = "fp8"
    BF16 = "bf16"


class Runtime(str, Enum):
    DOCKER = "docker"
    VENV = "venv"


class SshSettings(Record):
    """SSH settings; cluster-wide defaults and per-host overrides (None = inherit)."""

    user: UserName | None = None
    port: Port | None = None
    identity_file: LocalPath | None = None
    known_hosts: LocalPath | None = None
    jump_host: Annotated[str, StringConstraints(pattern=r"^([a-z_][a-z0-9_-]*@)?[A-Za-z0-9][A-Za-z0-9._:-]*(:\d{1,5})?$")] | None = None
    connect_timeout: Annotated[float, Field(gt=0, le=600)] | None = None
    command_timeout: Annotated[float, Field(gt=0)] | None = None
    config_file: LocalPath | None = None
    sudo: bool | None = None


class GpuSpec(Record):
    kind: GpuKind
    count: Annotated[int, Field(ge=1, le=16)] = 8


class HostSpec(Record):
    name: Name
    address: HostAddr
    cluster_address: HostAddr | None = None
    interface: Interface | None = None
    gpu: GpuSpec | None = None
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    ssh: SshSettings = Field(default_factory=SshSettings)

    @field_validator("cluster_address")
    @classmethod
    def _ip_literal(cls, v: str | None) -> str | None:
        if v is not None and ":" in v:
            ipaddress.IPv6Address(v)  # IPv6 literals must parse; names must not contain ':'
        return v


class ClusterSpec(Record):
    name: Name
    gpu: GpuSpec | None = None
    interface: Interface | None = None


class HubSource(Record):
    kind: Literal["hub"] = "hub"
    endpoint: Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9._:\[\]-]+(/[A-Za-z0-9._~/-]*)?$")] | None = None
    token_env: EnvName | None = None
    mode: Literal["fanout", "each"] = "fanout"
    seed_host: Name | None = None
    stall_timeout: Annotated[float, Field(gt=0)] = 120.0
    retries: Annotated[int, Field(ge=0, le=50)] = 5


class PathSource(Record):
    kind: Literal["path"]


WeightsSource = Annotated[HubSource | PathSource, Field(discriminator="kind")]

MODEL_REPOS = {"zai-org/GLM-5": Precision.BF16, "zai-org/GLM-5-FP8": Precision.FP8}


class ModelSpec(Record):
    repo: Literal["zai-org/GLM-5", "zai-org/GLM-5-FP8"]
    precision: Precision | None = None
    revision: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")] = "main"
    weights_dir: AbsPath
    source: WeightsSource = Field(default_factory=HubSource)

    @model_validator(mode="after")
    def _precision_matches(self) -> ModelSpec:
        derived = MODEL_REPOS[self.repo]
        if self.precision is not None and self.precision != derived:
            raise ValueError(
                f"precision {self.precision.value} contradicts repo {self.repo} "
                f"(which is {derived.value}); drop `precision` or pick the other repo"
            )
        if not self.weights_dir.startswith("/"):
            raise ValueError("weights_dir must be an absolute path on the nodes")
        return self

    @property
    def effective_precision(self) -> Precision:
        return MODEL_REPOS[self.repo]

    @property
    def pinned(self) -> bool:
        return bool(re.fullmatch(r"[0-9a-f]{40}", self.revision))


class Features(Record):
    speculative_decoding: bool | None = None  # None = as the cookbook has it for the hardware
    dp_attention: bool = False
    index_cache: bool = False
    served_model_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")] | None = None
    reasoning_parser: bool = True
    tool_call_parser: bool = True
    enable_metrics: bool = True


class Secrets(Record):
    """Secrets are referenced by environment-variable *name* only; values never enter the file."""

    hf_token_env: EnvName | None = None
    api_key_env: EnvName | None = None


class ServeSpec(Record):
    runtime: Runtime = Runtime.VENV
    sglang_version: Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([.a-z0-9+-]*)$")] = "0.5.23"
    image: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:@-]{0,254}$")] | None = None
    venv_path: AbsPath = "/opt/glm5cluster/venv"
    package_index: Annotated[str, StringConstraints(pattern=r"^(https?|file)://[^\s'\"`$;]+$")] | None = None
    http_port: Port = 30000
    dist_init_port: Port = 20000
    features: Features = Field(default_factory=Features)
    extra_args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(default_factory=list)
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(default_factory=dict)
    secrets: Secrets = Field(default_factory=Secrets)
    readiness_timeout: Annotated[float, Field(gt=0)] = 3600.0
    shm_size: Annotated[str, StringConstraints(pattern=r"^[0-9]+[kmgKMG]?$")] = "32g"


class RouterSpec(Record):
    host: Name
    port: Port = 8000
    policy: Literal["cache_aware", "round_robin", "random", "power_of_two"] = "cache_aware"


class ReplicasSpec(Record):
    count: Annotated[int, Field(ge=1, le=64)] | None = None
    router: RouterSpec | None = None


class NvidiaStack(Record):
    driver_branch: Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")] = "580"
    open_kernel_modules: bool | None = None  # None = as the hardware needs (always on Blackwell)
    cuda_repo: Annotated[str, StringConstraints(pattern=r"^(https?|file)://[^\s'\"`$;]+$")] | None = None
    container_toolkit_repo: Annotated[str, StringConstraints(pattern=r"^(https?|file)://[^\s'\"`$;]+$")] | None = None
    container_toolkit_version: Annotated[str, StringConstraints(pattern=r"^[0-9][0-9.a-z~+-]*$")] | None = None


class AmdStack(Record):
    rocm_version: Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")] = "7.2.0"
    repo: Annotated[str, StringConstraints(pattern=r"^(https?|file)://[^\s'\"`$;]+$")] | None = None


class StackSpec(Record):
    manage: bool = True  # False: verify the GPU stack only, never install
    nvidia: NvidiaStack = Field(default_factory=NvidiaStack)
    amd: AmdStack = Field(default_factory=AmdStack)
    apt_mirror: Annotated[str, StringConstraints(pattern=r"^(https?|file)://[^\s'\"`$;]+$")] | None = None
    registry_mirror: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")] | None = None
    insecure_registries: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]] = Field(default_factory=list)


class Inventory(Record):
    """The whole inventory file."""

    version: Literal[1] = 1
    cluster: ClusterSpec
    ssh: SshSettings = Field(default_factory=SshSettings)
    hosts: Annotated[list[HostSpec], Field(min_length=1)]
    groups: dict[Name, list[Name]] = Field(default_factory=dict)
    model: ModelSpec
    serving: ServeSpec = Field(default_factory=ServeSpec)
    replicas: ReplicasSpec = Field(default_factory=ReplicasSpec)
    stack: StackSpec = Field(default_factory=StackSpec)
