"""`glm5cluster inventory import --from-ansible FILE`: a glm5cluster inventory from an Ansible one.

ansible-core's own inventory parser reads the file (INI, YAML, or a directory with group_vars and
host_vars, exactly as `ansible-inventory` sees it); it is imported only here, and only when
installed (`pip install ansible-core`; the bench extra has it). Per host: `ansible_host` ->
`address`, `ansible_user` -> `ssh.user`, `ansible_port` -> `ssh.port`,
`ansible_ssh_private_key_file` -> `ssh.identity_file`, a jump host in `ansible_ssh_common_args`
(`-J`, `ProxyJump`, `ProxyCommand ssh -W`) -> `ssh.jump_host`, `ansible_become` (sudo to root)
-> `ssh.sudo` (``cli/ansible_map.py``); Ansible groups (but `all`/`ungrouped`)
-> `groups`. Names are made glm5cluster names (lowercase, `-`). The GPU kind/count, model and
cluster name come from options; the result is validated before it is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from glm5cluster.cli import ansible_map
from glm5cluster.errors import InputError, InputProblems, Problem
from glm5cluster.model.inventory import GpuKind, Inventory


@dataclass(frozen=True)
class AnsibleHost:
    name: str
    vars: Mapping[str, Any]
    groups: tuple[str, ...] = field(default=())


def glm5_name(name: str) -> str:
    """An Ansible host or group name as a glm5cluster name (lowercase letters, digits, '-')."""
    out = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-")[:40].strip("-")
    return out or "host"


def convert(hosts: Sequence[AnsibleHost], *, cluster: str, gpu: str, gpus: int, repo: str,
            weights_dir: str, notes: list[str] | None = None) -> dict[str, Any]:
    """The glm5cluster inventory (a mapping, ready for YAML) for ``hosts``; what needs the
    user's attention is appended to ``notes``."""
    notes = notes if notes is not None else []
    names: dict[str, str] = {}
    out_hosts: list[dict[str, Any]] = []
    groups: dict[str, list[str]] = {}
    for h in hosts:
        name = glm5_name(h.name)
        if name in names:
            raise InputError(f"Ansible hosts {names[name]!r} and {h.name!r} both become {name!r}",
                             hint="rename one of them in the Ansible inventory, or import one group (--group)")
        names[name] = h.name
        v = h.vars
        entry: dict[str, Any] = {"name": name, "address": str(v.get("ansible_host") or v.get("ansible_ssh_host")
                                                                 or h.name)}
        ssh: dict[str, Any] = {}
        user = v.get("ansible_user") or v.get("ansible_ssh_user")
        if user:
            ssh["user"] = str(user)
        port = v.get("ansible_port") or v.get("ansible_ssh_port")
        if port:
            ssh["port"] = int(port)
        if v.get("ansible_ssh_private_key_file"):
            ssh["identity_file"] = str(v["ansible_ssh_private_key_file"])
        jump = ansible_map.jump_host(h.name, v)
        if jump:
            ssh["jump_host"] = jump
        if ansible_map.become(h.name, v, str(user) if user else None, notes):
            ssh["sudo"] = True
        if ssh:
            entry["ssh"] = ssh
        out_hosts.append(entry)
        for g in h.groups:
            if g not in ("all", "ungrouped"):
                groups.setdefault(glm5_name(g), []).append(name)
    data: dict[str, Any] = {
        "version": 1,
        "cluster": {"name": glm5_name(cluster), "gpu": {"kind": gpu, "count": gpus}},
        "hosts": out_hosts,
        "model": {"repo": repo, "weights_dir": weights_dir},
    }
    if groups:
        data["groups"] = groups
    return data


def read_ansible(path: str, group: str) -> list[AnsibleHost]:
    """The hosts of ``group`` as ansible-core's own inventory parser sees them."""
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
    except ImportError as e:
        raise InputError("reading an Ansible inventory needs ansible-core",
                         hint="pip install ansible-core (or glm5cluster[bench])") from e
    if not Path(path).exists():
        raise InputProblems([Problem(path, None, "", "no such file")])
    loader = DataLoader()
    inv = InventoryManager(loader=loader, sources=[path])
    if group != "all" and group not in inv.groups:
        raise InputError(f"{path}: no Ansible group {group!r}",
                         hint=f"groups: {', '.join(sorted(inv.groups))}")
    vm = VariableManager(loader=loader, inventory=inv)
    out = []
    for h in inv.get_hosts(pattern=group):
        hv = vm.get_vars(host=h, include_hostvars=False)
        out.append(AnsibleHost(h.name, {k: hv[k] for k in hv if str(k).startswith("ansible_")},
                               tuple(g.name for g in h.get_groups())))
    if not out:
        raise InputProblems([Problem(path, None, "", f"no hosts in group {group!r}",
                                     "check the file with `ansible-inventory -i FILE --list`")])
    return out


@click.group(name="inventory")
def command() -> None:
    """Inventory tools."""


@command.command(name="import")
@click.option("--from-ansible", "source", required=True, metavar="FILE",
              help="An Ansible inventory (INI, YAML or a directory), read by ansible-core.")
@click.option("--group", default="all", show_default=True, help="Only the hosts of this Ansible group.")
@click.option("--name", "cluster", default=None, help="Cluster name (default: the group's, or the file's).")
@click.option("--gpu", type=click.Choice([k.value for k in GpuKind]), default="H200", show_default=True,
              help="GPU kind of every host (cluster.gpu.kind).")
@click.option("--gpus-per-node", type=click.IntRange(1, 16), default=8, show_default=True,
              help="GPUs per host (cluster.gpu.count).")
@click.option("--repo", default="zai-org/GLM-5-FP8", show_default=True, help="Model repository (model.repo).")
@click.option("--weights-dir", default="/data/models/GLM-5", show_default=True,
              help="Where the weights live on every host (model.weights_dir).")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="Write here instead of stdout (refuses to overwrite).")
@click.pass_context
def import_cmd(ctx: click.Context, source: str, group: str, cluster: str | None, gpu: str,
               gpus_per_node: int, repo: str, weights_dir: str, output: str | None) -> None:
    """Write a glm5cluster inventory for the hosts of an Ansible inventory; check its
    interfaces and cluster addresses (inventory/README.md), then `glm5cluster validate` it."""
    hosts = read_ansible(source, group)
    name = cluster or (group if group != "all" else Path(source).stem)
    notes: list[str] = []
    data = convert(hosts, cluster=name, gpu=gpu, gpus=gpus_per_node, repo=repo, weights_dir=weights_dir,
                   notes=notes)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    try:
        Inventory.model_validate(data)
    except Exception as e:  # noqa: BLE001 - pydantic's message, as an input error
        raise InputError(f"the imported inventory is not valid: {e}",
                         hint="fix the Ansible host names/addresses or the options") from e
    text = (f"# imported from the Ansible inventory {source} (group {group}) by glm5cluster;\n"
            "# set cluster_address/interface for the cluster network (inventory/README.md)\n"
            + yaml.safe_dump(data, sort_keys=False))
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            with open(output, "x") as f:
                f.write(text)
        except FileExistsError as e:
            raise InputError(f"{output} exists", hint="choose another --output or remove it") from e
        click.echo(f"wrote {output} ({len(hosts)} hosts)", err=True)
    ctx.exit(0)
