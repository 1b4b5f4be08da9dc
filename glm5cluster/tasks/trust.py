"""Trust anchors for the vendors' package repositories: a key fetched from a repository or a
mirror is installed only when every primary key in it has one of the pinned fingerprints.

The check runs on the node with ``python3`` (no gpg needed): ``KEYCHECK_PY`` reads an OpenPGP
key file (binary or ASCII-armoured), computes each primary key's v4 fingerprint (RFC 4880
12.2: SHA-1 of 0x99, the two-octet length and the public-key packet body), refuses the file
unless every one is pinned, and writes the binary keyring apt's ``signed-by=`` reads.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from glm5cluster.model.catalog import CONTAINER_TOOLKIT_KEY_FINGERPRINTS, CUDA_REPO_KEY_FINGERPRINTS

KEYCHECK_PY = r'''
import base64, hashlib, os, sys
src, out, allowed = sys.argv[1], sys.argv[2], {a.upper() for a in sys.argv[3:]}
data = open(src, "rb").read()
if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data:
    text = data.decode("ascii", "replace").split("-----BEGIN PGP PUBLIC KEY BLOCK-----", 1)[1]
    text = text.split("-----END PGP PUBLIC KEY BLOCK-----", 1)[0]
    # armour headers have a colon; the CRC line is "=" and 4 characters; the rest is base64
    body = [l.strip() for l in text.splitlines()
            if l.strip() and ":" not in l and not (l.startswith("=") and len(l.strip()) == 5)]
    data = base64.b64decode("".join(body))
fprs, pos = [], 0
while pos < len(data):
    tag_octet = data[pos]
    if not tag_octet & 0x80:
        sys.exit("not an OpenPGP key file")
    if tag_octet & 0x40:
        tag, o = tag_octet & 0x3F, data[pos + 1]
        if o < 192:
            n, hl = o, 2
        elif o < 224:
            n, hl = ((o - 192) << 8) + data[pos + 2] + 192, 3
        elif o == 255:
            n, hl = int.from_bytes(data[pos + 2:pos + 6], "big"), 6
        else:
            sys.exit("partial-length packet in a key file")
    else:
        tag, lt = (tag_octet >> 2) & 0x0F, tag_octet & 3
        if lt == 3:
            sys.exit("indeterminate-length packet in a key file")
        size = (1, 2, 4)[lt]
        n, hl = int.from_bytes(data[pos + 1:pos + 1 + size], "big"), 1 + size
    body = data[pos + hl:pos + hl + n]
    if tag == 6:
        if not body or body[0] != 4:
            sys.exit("a primary key that is not OpenPGP v4: cannot check its fingerprint")
        fprs.append(hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper())
    pos += hl + n
if not fprs:
    sys.exit("no public key in " + src)
bad = [f for f in fprs if f not in allowed]
if bad:
    sys.exit("key " + ", ".join(bad) + " is not pinned (expected one of " + ", ".join(sorted(allowed)) + ")")
if out != "-":
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
print("verified " + ", ".join(fprs))
'''


def keycheck(src_word: str, out: str, fingerprints: Sequence[str]) -> str:
    """Shell: verify the key file ``src_word`` (a shell word, e.g. ``"$t/key"``) against
    ``fingerprints``; install it at ``out`` (binary keyring; ``-``: verify only). Exits
    non-zero, naming the key, when one is not pinned."""
    if not fingerprints:
        raise ValueError("no pinned fingerprints")
    return f"python3 -c {shlex.quote(KEYCHECK_PY)} {src_word} {shlex.join([out, *fingerprints])}"


def cuda_pins(nvidia: Any) -> tuple[str, ...]:
    """The fingerprints the CUDA repository key must have (``stack.nvidia``)."""
    return tuple(nvidia.cuda_key_fingerprints or CUDA_REPO_KEY_FINGERPRINTS)


def toolkit_pins(nvidia: Any) -> tuple[str, ...]:
    return tuple(nvidia.container_toolkit_key_fingerprints or CONTAINER_TOOLKIT_KEY_FINGERPRINTS)
