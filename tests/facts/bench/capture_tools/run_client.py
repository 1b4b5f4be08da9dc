"""Run one of the real SGLang 0.5.23 clients (``python run_client.py MODULE ARGS...``) with one
module replaced: ``sglang.srt.disaggregation.utils``, of which ``benchmark/serving.py:57`` uses
one constant (``FAKE_BOOTSTRAP_HOST = "2.2.2.2"``, ``srt/disaggregation/utils.py:53``); the real
module loads the model configs, which need a CUDA build of torchvision. Used to make the
``real_*.txt`` captures beside this folder (see ``SOURCES.md``); not run by the tests."""

from __future__ import annotations

import runpy
import sys
import types

stub = types.ModuleType("sglang.srt.disaggregation.utils")
stub.FAKE_BOOTSTRAP_HOST = "2.2.2.2"  # type: ignore[attr-defined]
sys.modules["sglang.srt.disaggregation.utils"] = stub
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
runpy.run_module(module, run_name="__main__")
