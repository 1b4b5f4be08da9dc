"""Lab stand-in for ``sglang.srt.disaggregation.utils`` of the real 0.5.23 wheel.

``benchmark/serving.py:57`` imports one constant from it; the real module
(``srt/disaggregation/utils.py:53``) imports the model configs, which need torch and a CUDA
build of torchvision. The value is the real one.
"""

FAKE_BOOTSTRAP_HOST = "2.2.2.2"  # srt/disaggregation/utils.py:53
