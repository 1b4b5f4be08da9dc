"""Value rules the schema patterns cannot say alone: host addresses, node paths, revisions.

Each function returns the value or raises ``ValueError`` with the message the user sees.
"""

from __future__ import annotations

import ipaddress
import re

_DNS_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")
# Characters an authorized_keys ``command="..."`` option (which carries weights_dir to the
# transfer agent) cannot hold safely: the quote ends the option, the backslash escapes.
_UNSAFE_IN_FORCED_COMMAND = {'"', "\\"}


def check_host(value: str) -> str:
    """An IPv4 address, an IPv6 literal (no brackets) or an RFC 1123 DNS name."""
    if ":" in value:
        try:
            addr = ipaddress.IPv6Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid IPv6 address (a name may not contain ':')") from None
        if addr.ipv4_mapped is not None:
            raise ValueError(f"{value!r} is an IPv4-mapped IPv6 address; write the IPv4 form "
                             f"{addr.ipv4_mapped} instead")
        return value
    if re.fullmatch(r"[0-9.]+", value):
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid IPv4 address (four numbers 0-255, e.g. 10.0.0.1)") from None
        return value
    name = value[:-1] if value.endswith(".") else value
    for label in name.split("."):
        if len(label) > 63:
            raise ValueError(f"{value!r} is not a valid DNS name: the label {label[:20]!r}... is "
                             f"{len(label)} characters long (at most 63, RFC 1123)")
        if not _DNS_LABEL.match(label):
            raise ValueError(f"{value!r} is not a valid DNS name: each dot-separated label must be 1-63 "
                             "letters, digits or '-', not starting or ending with '-' (RFC 1123)")
    return value


def check_node_path(value: str, field: str) -> str:
    """An absolute directory on the nodes that is safe to create, mount and hand to the agent."""
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path; {field} must be an absolute path on the nodes")
    parts = [p for p in value.split("/") if p]
    if ".." in parts:
        raise ValueError(f"{value!r} contains '..'; write the directory without parent references")
    if all(p == "." for p in parts):
        raise ValueError(f"{field} {value!r} is the root directory; name a directory of its own, "
                         "e.g. /data/models/GLM-5")
    bad = sorted({c for c in value if c in _UNSAFE_IN_FORCED_COMMAND or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        raise ValueError(f"{value!r} contains {' '.join(repr(c) for c in bad)}, which cannot travel safely "
                         "in an SSH forced command; use letters, digits, '/', '.', '_', '-'")
    return value


def check_revision(value: str) -> str:
    if ".." in value.split("/") or ".." in value:
        raise ValueError(f"{value!r} contains '..'; use a commit hash, branch or tag")
    return value


# A PEP 508 requirement without a direct URL: name, optional extras, optional version
# specifiers, optional environment marker (pip options such as ``-e``/``--index-url`` and URL
# references are refused: packages come from the serving package index, like sglang itself).
_REQ_NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQ_SPEC = r"(===|~=|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"
_REQUIREMENT = re.compile(
    rf"^{_REQ_NAME}\s*(\[\s*{_REQ_NAME}(\s*,\s*{_REQ_NAME})*\s*\])?"
    rf"\s*({_REQ_SPEC}(\s*,\s*{_REQ_SPEC})*)?"
    r"\s*(;\s*[A-Za-z0-9_.<>=!~'\" ()-]+)?$")


def check_requirement(value: str) -> str:
    """A pip requirement string (PEP 508, no URL, no pip option)."""
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"{value!r} is a pip option, not a requirement: write package requirements only "
                         "(e.g. 'sgl-eval==0.1.3'; the index is serving.package_index)")
    if "://" in text or "@" in text.split(";", 1)[0]:
        raise ValueError(f"{value!r} is a URL reference: write a requirement the package index serves "
                         "(e.g. 'sgl-eval==0.1.3'; publish the package to serving.package_index)")
    if not _REQUIREMENT.match(text):
        raise ValueError(f"{value!r} is not a PEP 508 requirement (e.g. 'sgl-eval==0.1.3', "
                         "'sglang[bench]==0.5.23', 'aiohttp>=3.9')")
    return text
