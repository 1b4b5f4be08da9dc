"""SGLang launch arguments: version profiles, the argv builder, the option-table validator."""

from __future__ import annotations

from glm5cluster.sglang.args import build_args, served_model_name
from glm5cluster.sglang.launcher import entry_argv
from glm5cluster.sglang.options import (
    ArgvReport,
    OptionSpec,
    OptionTable,
    check_argv,
    load_table,
    require_release,
    supported_releases,
    table_document,
    table_for,
    validate_argv,
)
from glm5cluster.sglang.profiles import VersionProfile, profile_for

__all__ = [
    "ArgvReport",
    "OptionSpec",
    "OptionTable",
    "VersionProfile",
    "build_args",
    "check_argv",
    "entry_argv",
    "load_table",
    "profile_for",
    "require_release",
    "served_model_name",
    "supported_releases",
    "table_document",
    "table_for",
    "validate_argv",
]
