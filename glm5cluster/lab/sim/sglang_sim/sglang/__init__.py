"""Simulated SGLang 0.5.23 for the glm5cluster rehearsal lab (stdlib only; no GPU work).

Where the wheel ships the real benchmark clients (``build.py``: ``sglang.bench_serving``,
``sglang.test.few_shot_gsm8k``, ``run_eval``, ``sgl_eval_utils`` and the frontend language they
use), ``import sglang as sgl; sgl.function, sgl.gen, ...`` resolves lazily to the real frontend
names the real ``sglang/__init__.py:25-55`` exports, so the simulator itself still imports
nothing beyond the standard library.
"""

from sglang.version import __version__

__all__ = ["__version__"]

_LANG_API = ("Runtime", "assistant", "assistant_begin", "assistant_end", "flush_cache", "function", "gen",
             "gen_int", "gen_string", "get_server_info", "image", "select", "separate_reasoning",
             "set_default_backend", "system", "system_begin", "system_end", "user", "user_begin", "user_end",
             "video")
_LAZY = {**{name: "sglang.lang.api" for name in _LANG_API},
         "RuntimeEndpoint": "sglang.lang.backend.runtime_endpoint",
         "greedy_token_selection": "sglang.lang.choices", "token_length_normalized": "sglang.lang.choices",
         "unconditional_likelihood_normalized": "sglang.lang.choices",
         "global_config": "sglang.lang.global_config"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sglang' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
