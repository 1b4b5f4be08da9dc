"""A path's state (type, mode, owner, group, size, sha256) in one command, for idempotent writes."""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from dataclasses import dataclass

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact, FactError


@dataclass(frozen=True)
class PathState:
    path: str
    exists: bool
    type: str | None = None  # "regular file", "directory", "symbolic link", ...
    mode: int | None = None  # permission bits, e.g. 0o600
    owner: str | None = None
    group: str | None = None
    size: int | None = None
    sha256: str | None = None  # regular files only
    # The current content, read only when asked for (``expect_sha256`` given), the file differs
    # from it and is at most ``content_limit`` bytes: what a diff needs, at no cost when converged.
    content: bytes | None = None

    @property
    def is_file(self) -> bool:
        return self.type in ("regular file", "regular empty file")

    @property
    def is_dir(self) -> bool:
        return self.type == "directory"


CONTENT_MARK = "@@glm5cluster:content-base64@@"
DEFAULT_CONTENT_LIMIT = 256 * 1024


def path_state_script(path: str, expect_sha256: str | None = None,
                      content_limit: int = DEFAULT_CONTENT_LIMIT) -> str:
    """sh that prints ``exists=``, ``type=``, ``mode=``, ``owner=``, ``group=``, ``size=``,
    ``sha256=`` lines and, when the file's sha256 differs from ``expect_sha256``, its content
    in base64 after ``CONTENT_MARK``. Does not follow a final symlink."""
    read = ""
    if expect_sha256 is not None and content_limit > 0:
        if not re.fullmatch(r"[0-9a-f]{64}", expect_sha256):
            raise ValueError("expect_sha256 must be 64 lowercase hex digits")
        read = (f'; if [ "$h" != {expect_sha256} ] && [ "$(wc -c < "$p")" -le {int(content_limit)} ]; '
                f"then echo '{CONTENT_MARK}'; base64 < \"$p\"; fi")
    return (
        f"p={shlex.quote(path)}\n"
        'if [ -e "$p" ] || [ -L "$p" ]; then\n'
        "  echo exists=yes\n"
        "  stat --printf='type=%F\\nmode=%a\\nowner=%U\\ngroup=%G\\nsize=%s\\n' -- \"$p\" || exit 3\n"
        '  if [ -f "$p" ] && [ ! -L "$p" ]; then h=$(sha256sum < "$p") || exit 4; h=${h%% *}; '
        f'printf "sha256=%s\\n" "$h"{read}; fi\n'
        "else echo exists=no; fi"
    )


def parse_path_state(path: str, result: CommandResult) -> PathState:
    if not result.ok:
        raise FactError("path_state", f"cannot inspect {path}: {result.tail(3) or result.exit_code}")
    head, mark, encoded = result.stdout.partition(CONTENT_MARK + "\n")
    content = None
    if mark:
        try:
            content = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            content = None
    vals: dict[str, str] = {}
    for line in head.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            vals[key] = value
    if vals.get("exists") != "yes":
        return PathState(path, exists=False)
    return PathState(
        path=path,
        exists=True,
        type=vals.get("type"),
        mode=int(vals["mode"], 8) if vals.get("mode") else None,
        owner=vals.get("owner"),
        group=vals.get("group"),
        size=int(vals["size"]) if vals.get("size", "").isdigit() else None,
        sha256=vals.get("sha256"),
        content=content,
    )


class PathStateFact(Fact[PathState]):
    """``stat`` + ``sha256sum`` of one path (not following a final symlink). Runs privileged so
    root-only files (0600 env files) can be hashed."""

    name = "path_state"

    def __init__(self, path: str, expect_sha256: str | None = None,
                 content_limit: int = DEFAULT_CONTENT_LIMIT) -> None:
        if not path.startswith("/") or "\n" in path or "\x00" in path:
            raise ValueError(f"path_state needs an absolute path without newlines, got {path!r}")
        self.path = path
        self.expect_sha256 = expect_sha256
        self.content_limit = content_limit

    def command(self) -> Shell:
        return Shell.sh(path_state_script(self.path, self.expect_sha256, self.content_limit), sudo=True)

    def parse(self, result: CommandResult) -> PathState:
        return parse_path_state(self.path, result)
