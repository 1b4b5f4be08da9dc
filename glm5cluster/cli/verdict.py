"""One verdict for ``validate`` and ``plan``: every check the planner makes, each problem once.

``load_and_verify`` = the loader's checks (schema, secrets, whole-file rules), the version's flag
profile, the local files the inventory names, the topology, and, for every rank, the rendered
command: the option table of the version, the extra_args policy (``serving.override_flags``)
and the post-parse rules of real SGLang 0.5.23 (``sglang/postparse.py``). Errors are
``InputProblems`` (exit 2) with ``file:line: field: what (hint)``; warnings ride along.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from glm5cluster.cli.inventory_io import CheckedInventory, plan_problem
from glm5cluster.errors import InputProblems, PlanError, Problem
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.loader import LoadedInventory, load_inventory
from glm5cluster.runtime import for_inventory
from glm5cluster.runtime.rank import rank_command
from glm5cluster.sglang.args import (
    build_args,
    cookbook_args,
    extra_args_problems,
    listen_host,
    option_dests,
)
from glm5cluster.sglang.options import check_argv, table_for
from glm5cluster.sglang.postparse import check_postparse
from glm5cluster.sglang.profiles import profile_for
from glm5cluster.topology import Topology, plan_topology


def local_file_problems(loaded: LoadedInventory) -> Iterator[PlanError]:
    """The local files the inventory names must exist and be readable (known_hosts may be
    created later: missing is a warning)."""
    inv = loaded.inventory
    seen: set[tuple[str, str]] = set()
    for i, (host, node) in enumerate(zip(inv.hosts, loaded.nodes, strict=True)):
        for field in ("identity_file", "known_hosts", "config_file"):
            path = getattr(node.ssh, field)
            if path is None or (field, path) in seen:
                continue
            seen.add((field, path))
            where = f"hosts[{i}].ssh.{field}" if getattr(host.ssh, field) else f"ssh.{field}"
            yield from _file_problem(os.path.normpath(path), where, field)
    archive = inv.serving.image_archive
    if archive is not None and for_inventory(inv).needs_container_engine:  # it is `docker load`ed
        yield from _file_problem(archive, "serving.image_archive", "image_archive")
    for field in ("gsm8k_data_path", "sharegpt_path", "mmlu_data_path"):
        path = getattr(inv.bench, field)
        if path is not None:
            yield from _file_problem(bench_file(loaded.base_dir, path), f"bench.{field}", field)
    if inv.serving.extra_packages and for_inventory(inv).needs_container_engine:
        yield PlanError("the docker runtime runs the image as it is: extra_packages are installed into the "
                        "venv runtime only", hint="drop serving.extra_packages, or build an image that "
                        "contains them (serving.image)", path="serving.extra_packages")


def bench_file(base_dir: str, path: str) -> str:
    """A bench data path of the inventory: ~ expands, relative to the inventory's folder."""
    p = os.path.expanduser(path)
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(base_dir, p))


def _file_problem(path: str, where: str, field: str) -> Iterator[PlanError]:
    if os.path.isdir(path):
        yield PlanError(f"{path} is a folder, not a file", hint=f"name the {field} file itself", path=where)
    elif not os.path.exists(path):
        if field == "known_hosts":
            yield PlanError(f"{path} does not exist yet: every host key will be unknown and refused",
                            hint="record the hosts' keys first (e.g. `ssh-keyscan` checked against the "
                                 "hosts' consoles), or let `up` record them with its accept-new option",
                            path=where, warning=True)
        else:
            hint = ("create the key (ssh-keygen) or point at the right file" if field == "identity_file"
                    else "check the path (relative paths are relative to the inventory file)")
            yield PlanError(f"{path} does not exist", hint=hint, path=where)
    elif not os.access(path, os.R_OK):
        yield PlanError(f"{path} is not readable by this user", hint="fix its permissions", path=where)


def _cookbook_dests(inv: Inventory, topo: Topology) -> set[str]:
    table = table_for(inv.serving.sglang_version)
    return {d for rep in topo.replicas for d in option_dests(cookbook_args(inv, rep, rep.head), table)}


def _postparse_path(inv: Inventory, dests: tuple[str, ...]) -> str:
    table = table_for(inv.serving.sglang_version)
    if set(dests) & set(option_dests(list(inv.serving.extra_args), table)):
        return "serving.extra_args"
    if "served_model_name" in dests:
        return "serving.features.served_model_name"
    if {"attn_dp_size", "dp_size"} & set(dests):
        return "serving.features.dp_attention"
    if "flashinfer_allreduce_fusion_backend" in dests:
        return "hosts"
    return "serving"


def command_problems(inv: Inventory, topo: Topology) -> Iterator[PlanError]:
    """Every rank's rendered command against the option table and the post-parse rules."""
    table = table_for(inv.serving.sglang_version)
    family = profile_for(inv.serving.sglang_version).family
    for rep in topo.replicas:
        for rank in rep.ranks:
            try:
                rank_command(inv, topo, rep, rank)  # the runtime's own checks (docker: mountable paths)
                args = build_args(inv, topo, rep, rank)
            except PlanError as err:
                yield err
                continue
            for e in check_argv(args, table).errors:
                yield PlanError(f"the launch arguments do not parse: {e}", path="serving.extra_args")
            for p in check_postparse(args, table, rep.deployment.gpu.architecture, family):
                yield PlanError(p.message, hint="change the inventory so SGLang accepts the arguments",
                                path=_postparse_path(inv, p.dests))
            if "--trust-remote-code" in args and not inv.model.pinned:
                yield PlanError(
                    f"--trust-remote-code runs Python from {inv.model.repo} at revision "
                    f"{inv.model.revision!r}, which is not a pinned commit: whoever can push to it runs "
                    "code on every node", hint="pin model.revision to a 40-hex commit id",
                    path="model.revision", warning=True)
    if not inv.serving.secrets.api_key_env:
        host = ", ".join(sorted({listen_host(r) for r in topo.replicas})) or "0.0.0.0"
        yield PlanError(
            f"the API listens on all interfaces ({host}) with no API key: anyone who can reach "
            f"port {inv.serving.http_port} can use the model",
            hint="set serving.secrets.api_key_env to the name of a variable holding a key, or "
                 "firewall the port", path="serving.secrets", warning=True)


def verify(loaded: LoadedInventory) -> tuple[Topology | None, list[Problem], list[Problem]]:
    """-> (topology or None, errors, warnings), all as problems of the inventory file."""
    inv = loaded.inventory
    found: list[PlanError] = list(local_file_problems(loaded))
    version_ok = True
    try:
        profile_for(inv.serving.sglang_version)
    except PlanError as err:
        found.append(err)
        version_ok = False
    topo: Topology | None = None
    try:
        topo = plan_topology(inv, loaded.nodes)
        found += topo.warnings
    except PlanError as err:
        found.append(err)
    if version_ok:
        extra = extra_args_problems(inv, _cookbook_dests(inv, topo) if topo is not None else set())
        found += extra
        if topo is not None:
            if any(not e.warning for e in extra):  # still check the rest, without the bad extras
                bare = inv.serving.model_copy(update={"extra_args": [], "override_flags": []})
                found += command_problems(inv.model_copy(update={"serving": bare}), topo)
            else:
                found += command_problems(inv, topo)
    errors: list[Problem] = []
    warnings: list[Problem] = list(loaded.warnings)
    seen: set[str] = set()
    for item in found:
        problem = plan_problem(loaded, item)
        if str(problem) in seen:
            continue
        seen.add(str(problem))
        (warnings if item.warning else errors).append(problem)
    return topo, errors, warnings


def load_and_verify(path: str | os.PathLike[str]) -> CheckedInventory:
    """Load and check everything ``plan`` checks. Raises ``InputProblems`` listing every error."""
    loaded = load_inventory(path)
    topo, errors, warnings = verify(loaded)
    if errors or topo is None:
        raise InputProblems(sorted(errors, key=lambda p: p.line or 0))
    return CheckedInventory(loaded=loaded, topology=topo, warnings=warnings)
