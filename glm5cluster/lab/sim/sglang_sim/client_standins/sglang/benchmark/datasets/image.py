"""Lab stand-in for ``sglang.benchmark.datasets.image`` of the real 0.5.23 wheel (the ``image``
dataset, ``datasets/image.py:23``), which imports Pillow and a transformers processor at import
time. ``datasets/__init__.py:9`` imports the class; only ``--dataset-name image`` uses it.
"""


class ImageDataset:
    @classmethod
    def from_args(cls, args):
        raise SystemExit("--dataset-name image is not available in the glm5cluster lab "
                         "(its stand-in of sglang.benchmark.datasets.image has no image support)")
