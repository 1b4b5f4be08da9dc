"""Checks that need the whole inventory but no hardware catalog, and the inline-secret scan.

Each check yields `Finding(path, message, hint, warning)`; the loader turns them into
problems with file and line. Cluster-shape rules (tp, replicas, FP8 on AMD) are the
topology's (`glm5cluster.topology.plan_topology`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from glm5cluster.model.inventory import Inventory
from glm5cluster.model.nodes import resolve_ssh
from glm5cluster.model.yaml_source import PathT

HF_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{20,}")
SECRET_KEYS = {"token", "password", "passwd", "secret", "api_key", "apikey", "private_key", "access_key"}
SECRET_SUFFIXES = tuple("_" + k for k in SECRET_KEYS)
SECRET_FLAGS = ("--api-key", "--admin-api-key", "--hf-token", "--token", "--ssl-keyfile-password")
# scheme://user[:password]@host...: credentials written into a URL
URL_CREDENTIALS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@")
MAX_SCAN_VALUES = 200_000  # the secret scan visits each value once (aliases share values)
DP_ATTENTION_EXTRA_PORTS = 6  # ZMQ uses dist-init port +1 .. +6 on node 0 with DP attention


@dataclass(frozen=True)
class Finding:
    path: PathT
    message: str
    hint: str | None = None
    warning: bool = False


def _secret_hint(key: str) -> str:
    if "pass" in key.lower():
        return "passwords are not supported: log in with an SSH key (`ssh.identity_file`) or an agent"
    if "api" in key.lower():
        return ("keep the key in an environment variable on this machine and name it: "
                "`serving.secrets.api_key_env: GLM5_API_KEY`")
    return ("keep the token in an environment variable on this machine and name it: "
            "`serving.secrets.hf_token_env: HF_TOKEN`")


def is_secret_key(key: str) -> bool:
    norm = key.lower().replace("-", "_")
    return norm in SECRET_KEYS or norm.endswith(SECRET_SUFFIXES) or norm == "hf_token"


def find_inline_secrets(data: object, path: PathT = (), _seen: set[int] | None = None) -> Iterator[Finding]:
    """Refuse secret values written into the file: secret-named keys with a value, hub tokens and
    URL credentials anywhere. A mapping or list that YAML aliases share is visited once."""
    seen = set() if _seen is None else _seen
    if isinstance(data, dict | list):
        if id(data) in seen or len(seen) > MAX_SCAN_VALUES:
            return
        seen.add(id(data))
    if isinstance(data, dict):
        for key, value in data.items():
            sub = path + (str(key),)
            if is_secret_key(str(key)) and value not in (None, "") and not isinstance(value, dict | list):
                yield Finding(sub, f"`{key}` holds an inline secret; secrets must not be written in the inventory",
                              _secret_hint(str(key)))
            else:
                yield from find_inline_secrets(value, sub, seen)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            if isinstance(item, str) and item.split("=", 1)[0] in SECRET_FLAGS and (
                "=" in item or (i + 1 < len(data))
            ):
                yield Finding(path + (i,), f"`{item.split('=', 1)[0]}` passes a secret on the command line",
                              _secret_hint(item))
            else:
                yield from find_inline_secrets(item, path + (i,), seen)
    elif isinstance(data, str) and HF_TOKEN_RE.search(data):
        yield Finding(path, "this looks like a Hugging Face token (hf_...); secrets must not be written in the inventory",
                      _secret_hint("token"))
    elif isinstance(data, str) and URL_CREDENTIALS_RE.match(data.strip()):
        yield Finding(path, "this URL carries credentials (user:password@); secrets must not be written in the inventory",
                      "drop them from the URL; the tools read credentials from a secret environment "
                      "variable or ~/.netrc on the host (e.g. PIP_INDEX_URL, HF_TOKEN)")


def _norm_addr(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address.lower().rstrip(".")


def check_inventory(inv: Inventory) -> Iterator[Finding]:
    """Every rule that needs the whole file but no catalog."""
    names: dict[str, int] = {}
    ssh_addrs: dict[tuple[str, int], int] = {}
    cluster_addrs: dict[str, int] = {}
    for i, h in enumerate(inv.hosts):
        here: PathT = ("hosts", i)
        if h.name in names:
            yield Finding(here + ("name",), f"duplicate host name `{h.name}` (also hosts[{names[h.name]}])",
                          "host names must be unique")
        else:
            names[h.name] = i
        port = resolve_ssh(inv.ssh, h.ssh, h.address).port
        ssh_key = (_norm_addr(h.address), port)
        if ssh_key in ssh_addrs:
            yield Finding(here + ("address",), f"duplicate SSH address {h.address} port {port} "
                          f"(also hosts[{ssh_addrs[ssh_key]}])", "each host needs its own address or SSH port")
        else:
            ssh_addrs[ssh_key] = i
        caddr = _norm_addr(h.cluster_address or h.address)
        if caddr in cluster_addrs:
            field = "cluster_address" if h.cluster_address else "address"
            yield Finding(here + (field,), f"duplicate cluster address {h.cluster_address or h.address} "
                          f"(also hosts[{cluster_addrs[caddr]}])",
                          "every host needs its own cluster-network address (set `cluster_address`)")
        else:
            cluster_addrs[caddr] = i
        if h.gpu is None and inv.cluster.gpu is None:
            yield Finding(here, f"host `{h.name}` has no GPU kind",
                          "set `gpu: {kind: H200, count: 8}` on the host or `cluster.gpu` for all hosts")
    known = ", ".join(names)
    for group, members in inv.groups.items():
        for j, member in enumerate(members):
            if member not in names:
                yield Finding(("groups", group, j), f"group `{group}` names unknown host `{member}`",
                              f"known hosts: {known}")
    router = inv.replicas.router
    if router is not None and router.host not in names:
        yield Finding(("replicas", "router", "host"), f"router host `{router.host}` is not in `hosts`",
                      f"known hosts: {known}")
    source = inv.model.source
    seed = getattr(source, "seed_host", None)
    if seed is not None and seed not in names:
        yield Finding(("model", "source", "seed_host"), f"seed host `{seed}` is not in `hosts`", f"known hosts: {known}")
    yield from _check_ports(inv)
    yield from _check_plain_http(inv)


def _plain_http_urls(inv: Inventory) -> Iterator[tuple[PathT, str | None, bool]]:
    """(path, url, section allows plain http) for every URL-bearing field."""
    src = inv.model.source
    if src.kind == "hub":
        yield ("model", "source", "endpoint"), src.endpoint, src.insecure
    yield ("serving", "package_index"), inv.serving.package_index, inv.serving.insecure
    nv = inv.stack.nvidia
    yield ("stack", "nvidia", "cuda_repo"), nv.cuda_repo, nv.insecure
    yield ("stack", "nvidia", "container_toolkit_repo"), nv.container_toolkit_repo, nv.insecure
    yield ("stack", "amd", "repo"), inv.stack.amd.repo, inv.stack.amd.insecure


def _check_plain_http(inv: Inventory) -> Iterator[Finding]:
    for path, url, insecure in _plain_http_urls(inv):
        if url is None or not url.lower().startswith("http://"):
            continue
        section = ".".join(str(p) for p in path[:-1])
        if not insecure:
            yield Finding(path, f"{url} is plain http: packages, weights and keys fetched from it can be "
                          "tampered with on the way",
                          f"use https, or accept the risk on a trusted network: `{section}.insecure: true`")
        else:
            yield Finding(path, f"{url} is plain http (allowed by {section}.insecure); use it only on a "
                          "trusted network", None, warning=True)


def _check_ports(inv: Inventory) -> Iterator[Finding]:
    s = inv.serving
    if s.http_port == s.dist_init_port:
        yield Finding(("serving", "http_port"), f"http_port {s.http_port} is also the dist_init_port",
                      "use different ports (defaults: http 30000, dist-init 20000)")
    if s.features.dp_attention and s.dist_init_port + DP_ATTENTION_EXTRA_PORTS > 65535:
        yield Finding(("serving", "dist_init_port"),
                      f"dist_init_port {s.dist_init_port} + {DP_ATTENTION_EXTRA_PORTS} is past 65535: DP attention "
                      "also listens on dist_init_port +1..+6",
                      f"use a dist_init_port of at most {65535 - DP_ATTENTION_EXTRA_PORTS} (default 20000)")
    if s.http_port != s.dist_init_port and s.features.dp_attention and 0 < s.http_port - s.dist_init_port <= DP_ATTENTION_EXTRA_PORTS:
        yield Finding(("serving", "http_port"),
                      f"http_port {s.http_port} clashes with the DP-attention ports "
                      f"{s.dist_init_port + 1}-{s.dist_init_port + DP_ATTENTION_EXTRA_PORTS} (dist_init_port +1..+6)",
                      "move http_port or dist_init_port apart")
