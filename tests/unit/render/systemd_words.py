"""A test-side reader of systemd ``ExecStart=`` lines, following systemd.service(5) and
systemd.unit(5): specifiers (``%%`` is a literal ``%``, any other ``%x`` would be expanded),
word splitting with single/double quotes and C escapes, then environment expansion (``$$`` is
a literal ``$``; ``$NAME``/``${NAME}`` would be expanded). Anything that systemd would expand or
treat specially makes this reader fail, so a round trip proves the value is inert."""

from __future__ import annotations

import re

_C = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
      "f": "\f", "v": "\v", "s": " "}


def unspecify(line: str) -> str:
    out, i = [], 0
    while i < len(line):
        if line[i] == "%":
            if line[i + 1:i + 2] != "%":
                raise ValueError(f"specifier %{line[i + 1:i + 2]} would be expanded")
            out.append("%")
            i += 2
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def split_words(line: str) -> list[str]:
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        word: list[str] = []
        quote = None
        while i < n:
            ch = line[i]
            if quote is None and ch in " \t":
                break
            if ch == "\n":
                raise ValueError("raw newline inside ExecStart")
            if ch == "\\":
                nxt = line[i + 1:i + 2]
                if nxt == "x":
                    word.append(chr(int(line[i + 2:i + 4], 16)))
                    i += 4
                    continue
                if nxt not in _C:
                    raise ValueError(f"unknown escape \\{nxt}")
                word.append(_C[nxt])
                i += 2
                continue
            if quote is None and ch in "\"'":
                quote = ch
            elif ch == quote:
                quote = None
            else:
                word.append(ch)
            i += 1
        if quote is not None:
            raise ValueError("unterminated quote")
        words.append("".join(word))
    if ";" in words:
        raise ValueError("a lone ; separates commands")
    return words


def unexpand(word: str) -> str:
    if re.search(r"(?<!\$)(\$\$)*\$(?!\$)", word):
        raise ValueError(f"environment expansion would happen in {word!r}")
    return word.replace("$$", "$")


def exec_start_argv(line: str) -> list[str]:
    return [unexpand(w) for w in split_words(unspecify(line))]
