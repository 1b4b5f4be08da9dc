"""The ``file`` and ``directory`` tasks, and the pure planners other tasks reuse
(``file_facts`` + ``plan_file`` for any file whose content a task computes)."""

from __future__ import annotations

import difflib
import hashlib
import posixpath
import shlex
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import StringConstraints, field_validator

from glm5cluster.commands import Command, Shell, Upload
from glm5cluster.facts.base import Fact
from glm5cluster.facts.paths import PathState, PathStateFact
from glm5cluster.model.inventory import USER_RE
from glm5cluster.tasks.base import Change, Fail, HostContext, NoOp, Outcome, Params, Task

HostPath = Annotated[str, StringConstraints(pattern=r"^/[^\x00-\x1f\x7f]*[^/\x00-\x1f\x7f]$", max_length=4096)]
Mode = Annotated[str, StringConstraints(pattern=r"^0?[0-7]{3}$")]
Account = Annotated[str, StringConstraints(pattern=USER_RE)]
MAX_DIFF_LINES = 200
SECRET_DIFF = "(secret content changed)"


def _mode_as_string(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("write the mode as a quoted octal string, e.g. '0600' "
                         "(YAML reads 0600 as the number 384)")
    return value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def owner_spec(owner: str | None, group: str | None) -> str | None:
    """``chown`` argument for the parts given, or None."""
    if owner and group:
        return f"{owner}:{group}"
    if owner:
        return owner
    if group:
        return f":{group}"
    return None


def metadata_changes(state: PathState, mode: int | None, owner: str | None, group: str | None) -> list[str]:
    out = []
    if mode is not None and state.mode != mode:
        out.append(f"mode {state.mode:04o} -> {mode:04o}" if state.mode is not None else f"mode -> {mode:04o}")
    if owner is not None and state.owner != owner:
        out.append(f"owner {state.owner} -> {owner}")
    if group is not None and state.group != group:
        out.append(f"group {state.group} -> {group}")
    return out


def content_diff(dest: str, old: bytes | None, new: bytes, secret: bool, existed: bool) -> str:
    if secret:
        return SECRET_DIFF
    if existed and old is None:
        return "(content changed; previous content not read: too large)"
    if b"\0" in new or (old is not None and b"\0" in old):
        return "(binary content changed)"
    before = (old or b"").decode("utf-8", "replace").splitlines(keepends=True)
    after = new.decode("utf-8", "replace").splitlines(keepends=True)
    lines = list(difflib.unified_diff(before, after, fromfile=f"{dest} (now)" if existed else "/dev/null",
                                      tofile=f"{dest} (wanted)", n=3))
    lines = [ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines]
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... ({len(lines) - MAX_DIFF_LINES} more diff lines)\n"]
    return "".join(lines).rstrip("\n")


def write_commands(dest: str, content: bytes, mode: int, owner: str | None, group: str | None,
                   secret: bool = False) -> list[Command]:
    """One ``Upload``: the transport writes a temporary file beside ``dest`` (mode 0600 while
    written), sets mode and owner on it, then ``mv``s it over ``dest`` (``connect/ssh.py put``),
    so a reader sees the old or the new file, never a part."""
    what = "secret content" if secret else f"{len(content)} bytes"
    chown = owner_spec(owner, group)
    return [Upload(dest=dest, content=content, mode=mode, owner=owner, group=group, sudo=True,
                   description=f"write {dest} ({what}, mode {mode:04o}" + (f", {chown})" if chown else ")"))]


def file_facts(dest: str, content: bytes, secret: bool = False) -> dict[str, Fact[Any]]:
    """The fact ``plan_file`` needs. Secret files are never read back (no content in any output)."""
    return {"dest": PathStateFact(dest, expect_sha256=None if secret else sha256_hex(content))}


def plan_file(dest: str, content: bytes, mode: int, owner: str | None, group: str | None,
              state: PathState, secret: bool = False) -> Outcome:
    """NoOp when sha256, mode, owner and group match; otherwise the commands and a diff."""
    if state.exists and not state.is_file:
        return Fail(f"{dest} exists and is a {state.type}, not a regular file",
                    hint="remove it or choose another dest")
    meta = metadata_changes(state, mode, owner, group) if state.exists else []
    if state.exists and state.sha256 == sha256_hex(content):
        if not meta:
            return NoOp(f"{dest} up to date ({mode:04o} {state.owner}:{state.group})")
        cmds: list[Command] = [Shell.sh(f"chmod {mode:04o} -- {shlex.quote(dest)}", sudo=True)]
        chown = owner_spec(owner, group)
        if chown:
            cmds.append(Shell.sh(f"chown {shlex.quote(chown)} -- {shlex.quote(dest)}", sudo=True))
        return Change(cmds, f"{dest}: " + ", ".join(meta), diff="\n".join(meta))
    diff = content_diff(dest, state.content, content, secret, state.exists)
    verb = "update" if state.exists else "create"
    summary = f"{verb} {dest}" + (f" ({', '.join(meta)})" if meta else "")
    full_diff = diff + ("\n" + "\n".join(meta) if meta else "")
    return Change(write_commands(dest, content, mode, owner, group, secret), summary, full_diff)


class FileParams(Params):
    dest: HostPath
    content: str
    mode: Mode = "0644"
    owner: Account | None = None
    group: Account | None = None
    secret: bool = False  # never show the content: diffs say "(secret content changed)"

    _mode_str = field_validator("mode", mode="before")(_mode_as_string)


class FileTask(Task[FileParams]):
    """A file with exact content, mode, owner and group; written atomically."""

    name = "file"
    Params = FileParams

    def facts(self, params: FileParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        return file_facts(params.dest, params.content.encode(), params.secret)

    def plan(self, params: FileParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        return plan_file(params.dest, params.content.encode(), int(params.mode, 8), params.owner,
                         params.group, facts["dest"], params.secret)


_PROTECTED = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc",
              "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var"}


class DirectoryParams(Params):
    path: HostPath
    mode: Mode | None = "0755"  # None: leave the mode of an existing directory alone
    owner: Account | None = None
    group: Account | None = None
    state: Literal["present", "absent"] = "present"

    _mode_str = field_validator("mode", mode="before")(_mode_as_string)

    @field_validator("path")
    @classmethod
    def _not_system(cls, v: str) -> str:
        if posixpath.normpath(v) in _PROTECTED:
            raise ValueError(f"refusing to manage the system directory {v}")
        return v


class DirectoryTask(Task[DirectoryParams]):
    """A directory (parents created as needed) with mode/owner/group, or its absence."""

    name = "directory"
    Params = DirectoryParams

    def facts(self, params: DirectoryParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        return {"path": PathStateFact(params.path)}

    def plan(self, params: DirectoryParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        state: PathState = facts["path"]
        p = shlex.quote(params.path)
        if params.state == "absent":
            if not state.exists:
                return NoOp(f"{params.path} absent")
            if not state.is_dir:
                return Fail(f"{params.path} is a {state.type}, not a directory", hint="remove it by hand")
            return Change([Shell.sh(f"rm -rf -- {p}", sudo=True, timeout=1800)], f"remove {params.path}")
        mode = int(params.mode, 8) if params.mode is not None else None
        chown = owner_spec(params.owner, params.group)
        if state.exists and not state.is_dir:
            return Fail(f"{params.path} exists and is a {state.type}, not a directory",
                        hint="remove it or choose another path")
        meta = metadata_changes(state, mode, params.owner, params.group) if state.exists else []
        if state.exists and not meta:
            return NoOp(f"{params.path} present ({state.mode or 0:04o} {state.owner}:{state.group})")
        parts = [] if state.exists else [f"mkdir -p -- {p}"]
        if mode is not None and (not state.exists or state.mode != mode):
            parts.append(f"chmod {mode:04o} -- {p}")
        if chown and (not state.exists or any(m.startswith(("owner", "group")) for m in meta)):
            parts.append(f"chown {shlex.quote(chown)} -- {p}")
        summary = f"{params.path}: " + ", ".join(meta) if state.exists else f"create {params.path}"
        return Change([Shell.sh(" && ".join(parts), sudo=True)], summary, diff="\n".join(meta) or None)
