"""Per-version flag spellings. The catalog says *what* to set; a profile says how to spell it.

Families (reference ``sglang-glm5.md`` section 1, "Flag names drift"):

- ``0.5.23``: ``--attention-backend dsa``, ``--dsa-prefill-backend``/``--dsa-decode-backend``,
  ``--attn-dp-size N``, ``--flashinfer-allreduce-fusion-backend auto``. Checked against the
  captured 0.5.23 option table.
- ``launch-era`` (GLM-5 launch: 0.5.8 .. 0.5.10, the ``glm5-hopper``/``glm5-blackwell`` images,
  ``rocm/sgl-dev:v0.5.8.post1-*``): ``--attention-backend nsa``, ``--nsa-*-backend``,
  ``--dp-size N --enable-dp-attention`` (the cookbook writes ``--dp``, an argparse prefix
  abbreviation of ``--dp-size``; we always render full names), ``--enable-flashinfer-allreduce-fusion``.

Versions from 0.5.8 up to (not including) 0.5.23 are treated as launch era: the rename
(sgl-project/sglang PR #25821) landed shortly before 0.5.23 and no option table of the
releases in between was captured. Versions before 0.5.8 cannot load GLM-5 (``glm_moe_dsa``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from glm5cluster.errors import PlanError

Family = Literal["0.5.23", "launch-era"]
MIN_VERSION = (0, 5, 8)
DSA_RENAME_VERSION = (0, 5, 23)


@dataclass(frozen=True)
class VersionProfile:
    family: Family
    version: str
    attention_backend_value: str  # value of --attention-backend for the sparse-attention backend
    dsa_prefill_flag: str
    dsa_decode_flag: str

    def dp_attention(self, size: int) -> list[str]:
        if self.family == "0.5.23":
            return ["--attn-dp-size", str(size)]
        return ["--dp-size", str(size), "--enable-dp-attention"]

    def allreduce_fusion(self) -> list[str]:
        if self.family == "0.5.23":
            return ["--flashinfer-allreduce-fusion-backend", "auto"]
        return ["--enable-flashinfer-allreduce-fusion"]


def parse_version(version: str) -> tuple[int, int, int]:
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
    if not m:
        raise PlanError(f"cannot read SGLang version {version!r}", hint="write it as 0.5.23",
                        path="serving.sglang_version")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


MODERN = VersionProfile("0.5.23", "", "dsa", "--dsa-prefill-backend", "--dsa-decode-backend")
LAUNCH_ERA = VersionProfile("launch-era", "", "nsa", "--nsa-prefill-backend", "--nsa-decode-backend")


def profile_for(version: str) -> VersionProfile:
    """The flag profile for ``serving.sglang_version``."""
    v = parse_version(version)
    if v < MIN_VERSION:
        raise PlanError(
            f"SGLang {version} predates GLM-5 support (it cannot load model type glm_moe_dsa)",
            hint="use SGLang 0.5.8 or newer (0.5.23 recommended)",
            path="serving.sglang_version",
        )
    base = MODERN if v >= DSA_RENAME_VERSION else LAUNCH_ERA
    return VersionProfile(base.family, version, base.attention_backend_value, base.dsa_prefill_flag,
                          base.dsa_decode_flag)
