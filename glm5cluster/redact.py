"""One masking function for everything glm5cluster prints or writes to its own logs.

Two things are masked:

* known secret VALUES: the ones this process read from the environment variables the inventory
  names (``remember_env``), passed to a command's stdin, or handed in by the caller;
* secret FIELDS whatever their value: ``api_key=...``, ``admin_api_key='...'`` (SGLang's
  ``server_args=ServerArgs(...)`` repr of the launch-era releases), ``'api_key': '...'`` (the
  ``server_args={...}`` dict SGLang 0.5.23 logs at start-up: sglang/srt/entrypoints/engine.py:311
  and :1185 log ``_server_args_for_logging``, which only redacts watermark secrets, :173-174),
  ``--api-key X`` / ``--api-key=X`` (argv), ``HF_TOKEN=...`` (environment) and
  ``Authorization: Bearer X``.

Empty values and ``None`` are left as they are (they say "no key", which is useful). The lowest
layer: imports nothing of glm5cluster, so every layer may use it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping

MASK = "***"
MIN_LEN = 4  # shorter "secrets" would mask ordinary words

_known: set[str] = set()
_lock = threading.Lock()

# field names whose value is a secret (python / json / env / flag spellings)
_NAMES = r"(?:admin[_-]?api[_-]?key|api[_-]?key|hf[_-]?token|hugging[_-]?face[_-]?hub[_-]?token|access[_-]?token|password|secret[_-]?key)"
_VALUE = r"(?:'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"|[^\s,;)}\]'\"]+)"
_FIELD = re.compile(
    r"(?P<key>(?<![A-Za-z0-9])(?P<q>['\"]?)" + _NAMES + r"(?P=q)\s*(?:=|:\s*))(?P<val>" + _VALUE + ")",
    re.IGNORECASE)
_FLAG = re.compile(r"(?P<key>--(?:admin-)?api-key(?:=|\s+))(?P<val>" + _VALUE + ")", re.IGNORECASE)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<val>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)


def remember(*values: str | None) -> None:
    """Mask these values from now on, in this process (secrets read from the environment)."""
    with _lock:
        _known.update(v for v in values if v and len(v) >= MIN_LEN)


def remember_env(environ: Mapping[str, str], *names: str | None) -> None:
    """Remember the values of the named environment variables (the inventory's secret names)."""
    remember(*(environ.get(n) for n in names if n))


def forget_all() -> None:
    """For tests."""
    with _lock:
        _known.clear()


def _hide(m: re.Match[str]) -> str:
    val = m.group("val")
    inner = val[1:-1] if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"" else val
    if not inner or inner in ("None", "null") or inner == MASK:
        return m.group(0)
    quote = val[0] if inner is not val else ""
    return f"{m.group('key')}{quote}{MASK}{quote}"


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value and every secret field's value replaced by ``***``."""
    if not text:
        return text
    with _lock:
        values = _known | {s for s in secrets if s and len(s) >= MIN_LEN}
    for v in sorted(values, key=len, reverse=True):
        if v in text:
            text = text.replace(v, MASK)
    for rx in (_FIELD, _FLAG, _BEARER):
        text = rx.sub(_hide, text)
    return text
