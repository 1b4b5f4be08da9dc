"""Several commands in one shell, one round trip, and the split of the output back into parts.

Each part runs in its own subshell with stdin from /dev/null; before and after it the script
writes a marker line to stdout *and* stderr:

    @@glm5cluster:9f2c6d1e4b7a:<name>:begin@@
    ...the part's own output...
    @@glm5cluster:9f2c6d1e4b7a:<name>:end:<exit code>@@

A marker is a whole line (the script writes a newline before it, and ``split_sections`` removes
exactly that newline again, so each part's output comes back byte for byte), carries a fixed
random token no tool prints, and must pair a begin with the end of the same name. A part that
never reached its end marker (the shell was killed) comes back with exit code -1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from glm5cluster.commands import CommandResult

TOKEN = "glm5cluster:9f2c6d1e4b7a"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MISSING_EXIT = -1


def _marker(name: str, tail: str) -> str:
    return f"@@{TOKEN}:{name}:{tail}@@"


def section_script(parts: Sequence[tuple[str, str]], *, final_exit: bool = True) -> str:
    """One POSIX sh script running every ``(name, script)`` part in order, with markers.

    ``script`` must already be quoted by its author; names are checked against ``NAME_RE``.
    The script ends with ``exit 0`` unless ``final_exit`` is false (to embed it in another).
    """
    seen: set[str] = set()
    lines: list[str] = []
    for name, script in parts:
        if not NAME_RE.match(name) or name in seen:
            raise ValueError(f"bad or repeated section name {name!r}")
        seen.add(name)
        begin = _marker(name, "begin")
        end = _marker(name, "end")
        lines.append(f"printf '\\n%s\\n' '{begin}'; printf '\\n%s\\n' '{begin}' >&2")
        lines.append(f"(\n{script}\n) </dev/null; __glm5_rc=$?")
        lines.append(
            f"printf '\\n%s:%s@@\\n' '{end[:-2]}' \"$__glm5_rc\"; "
            f"printf '\\n%s:%s@@\\n' '{end[:-2]}' \"$__glm5_rc\" >&2"
        )
    if final_exit:
        lines.append("exit 0")
    return "\n".join(lines)


def _split_stream(text: str) -> dict[str, tuple[str, int]]:
    """name -> (output, exit code) for one stream."""
    out: dict[str, tuple[str, int]] = {}
    token = re.escape(TOKEN)
    begin_re = re.compile(rf"(?:^|\n)@@{token}:([a-z0-9_.-]+):begin@@\n")
    pos = 0
    while True:
        m = begin_re.search(text, pos)
        if not m:
            break
        name = m.group(1)
        start = m.end()
        end_re = re.compile(rf"\n@@{token}:{re.escape(name)}:end:(-?\d+)@@(?:\n|$)")
        e = end_re.search(text, start)
        if e is None:
            nxt = begin_re.search(text, start)
            stop = nxt.start() if nxt else len(text)
            out[name] = (text[start:stop], MISSING_EXIT)
            pos = stop
            continue
        out[name] = (text[start : e.start()], int(e.group(1)))
        pos = e.end()
    return out


def split_sections(result: CommandResult, names: Sequence[str] | None = None) -> dict[str, CommandResult]:
    """The per-part results of a ``section_script`` run.

    When ``names`` is given, a part missing from the output (never started: the shell died
    earlier, or the transport failed) comes back with exit code -1, empty output, and the
    whole command's stderr tail for context.
    """
    stdout = _split_stream(result.stdout)
    stderr = _split_stream(result.stderr)
    parts: dict[str, CommandResult] = {}
    for name, (text, code) in stdout.items():
        err, err_code = stderr.get(name, ("", code))
        parts[name] = CommandResult(
            command=f"[{name}] {result.command}"[:200],
            exit_code=code if code != MISSING_EXIT else err_code,
            stdout=text,
            stderr=err,
        )
    for name in names or ():
        if name not in parts:
            parts[name] = CommandResult(
                command=f"[{name}] {result.command}"[:200],
                exit_code=MISSING_EXIT,
                stdout="",
                stderr=result.stderr if result.exit_code != 0 else "section missing from output",
            )
    return parts

