"""Lab stand-in for the package ``sglang.srt.utils`` of the real 0.5.23 wheel.

The real ``srt/utils/__init__.py:1-3`` re-exports ``srt/utils/common.py`` (which imports torch
and triton) and ``is_port_available``. The benchmark clients import only the submodule
``sglang.srt.utils.network`` (``benchmark/serving.py:58``, ``utils.py:162``), shipped verbatim,
so this package marker is all they need: no torch on lab hosts.
"""
