"""Per-release flag spellings, read off each release's real option table.

The catalog says *what* to set; a profile says how the release spells it. Each choice is the
presence of a flag (or a value) in the release's table (``options.py``), never a version range:

- sparse-attention backends: ``--dsa-prefill-backend``/``--dsa-decode-backend`` where the table
  offers them (0.5.13 on; ``--nsa-*`` are deprecated aliases in 0.5.13 .. 0.5.19 and gone in
  0.5.20), else ``--nsa-*``; ``--attention-backend dsa`` where ``dsa`` is a choice, else ``nsa``;
- DP attention: ``--attn-dp-size N`` where offered (0.5.22 on), else
  ``--dp-size N --enable-dp-attention`` (the cookbook writes ``--dp``, a prefix abbreviation;
  we always render full names);
- allreduce fusion: ``--flashinfer-allreduce-fusion-backend auto`` where offered (0.5.14 on),
  else ``--enable-flashinfer-allreduce-fusion``.

``family`` names the spelling set: ``0.5.23`` when every choice is 0.5.23's, ``launch-era``
when every choice is the GLM-5 launch spelling, ``transitional`` in between. A version without
a shipped table is refused with the list of supported ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache

from glm5cluster.errors import PlanError
from glm5cluster.model.images import release_of_image
from glm5cluster.sglang.options import OptionTable, require_release, supported_releases, table_for

NEW_DP, OLD_DP, OLD_DP_SWITCH = "--attn-dp-size", "--dp-size", "--enable-dp-attention"
NEW_FUSION, OLD_FUSION = "--flashinfer-allreduce-fusion-backend", "--enable-flashinfer-allreduce-fusion"


@dataclass(frozen=True)
class VersionProfile:
    family: str
    version: str
    attention_backend_value: str  # value of --attention-backend for the sparse-attention backend
    dsa_prefill_flag: str
    dsa_decode_flag: str
    dp_attention_flag: str  # --attn-dp-size, or --dp-size (with --enable-dp-attention)
    allreduce_fusion_flag: str  # --flashinfer-allreduce-fusion-backend (auto), or the old switch

    def dp_attention(self, size: int) -> list[str]:
        if self.dp_attention_flag == NEW_DP:
            return [NEW_DP, str(size)]
        return [OLD_DP, str(size), OLD_DP_SWITCH]

    def allreduce_fusion(self) -> list[str]:
        if self.allreduce_fusion_flag == NEW_FUSION:
            return [NEW_FUSION, "auto"]
        return [OLD_FUSION]


def _prefer(table: OptionTable, new: str, old: str, value: str | None = None) -> str:
    return new if table.offers(new, value) else old


def _family(p: VersionProfile) -> str:
    spelled = (p.attention_backend_value, p.dsa_prefill_flag, p.dp_attention_flag, p.allreduce_fusion_flag)
    if spelled == ("dsa", "--dsa-prefill-backend", NEW_DP, NEW_FUSION):
        return "0.5.23"
    if spelled == ("nsa", "--nsa-prefill-backend", OLD_DP, OLD_FUSION):
        return "launch-era"
    return "transitional"


@cache
def _profile(version: str) -> VersionProfile:
    t = table_for(version)
    attention = t.lookup("--attention-backend")
    p = VersionProfile(
        family="",
        version=version,
        attention_backend_value="dsa" if attention and attention.choices and "dsa" in attention.choices else "nsa",
        dsa_prefill_flag=_prefer(t, "--dsa-prefill-backend", "--nsa-prefill-backend"),
        dsa_decode_flag=_prefer(t, "--dsa-decode-backend", "--nsa-decode-backend"),
        dp_attention_flag=_prefer(t, NEW_DP, OLD_DP),
        allreduce_fusion_flag=_prefer(t, NEW_FUSION, OLD_FUSION, "auto"),
    )
    return replace(p, family=_family(p))


def parse_version(version: str) -> tuple[int, int, int]:
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
    if not m:
        raise PlanError(f"cannot read SGLang version {version!r}", hint="write it as 0.5.23",
                        path="serving.sglang_version")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def profile_for(version: str) -> VersionProfile:
    """The flag profile for ``serving.sglang_version`` (PlanError for an unsupported release)."""
    return _profile(require_release(version))


__all__ = ["VersionProfile", "parse_version", "profile_for", "release_of_image", "supported_releases"]
