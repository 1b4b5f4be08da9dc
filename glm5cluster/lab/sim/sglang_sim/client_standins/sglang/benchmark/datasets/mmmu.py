"""Lab stand-in for ``sglang.benchmark.datasets.mmmu`` of the real 0.5.23 wheel (the ``mmmu``
dataset, ``datasets/mmmu.py:17``), which imports the ``datasets`` library (pyarrow, pandas) at
import time. ``datasets/__init__.py:11`` imports the class; only ``--dataset-name mmmu`` uses it.
"""


class MMMUDataset:
    @classmethod
    def from_args(cls, args):
        raise SystemExit("--dataset-name mmmu is not available in the glm5cluster lab "
                         "(its stand-in of sglang.benchmark.datasets.mmmu downloads nothing)")
