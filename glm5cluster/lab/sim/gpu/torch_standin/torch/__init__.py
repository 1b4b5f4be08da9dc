"""Lab stand-in for the part of torch the NCCL probe uses (see ../README.md). Not real torch."""

from __future__ import annotations

from torch import cuda, distributed  # noqa: F401  (import torch.distributed works as in torch)


class dtype:  # noqa: N801 - torch spells it so
    def __init__(self, name: str, itemsize: int) -> None:
        self.name, self.itemsize = name, itemsize


bfloat16 = dtype("bfloat16", 2)
float64 = dtype("float64", 8)


class device:  # noqa: N801
    def __init__(self, kind: str, index: int = 0) -> None:
        self.type, self.index = kind, index


class Tensor:
    def __init__(self, numel: int, dt: dtype, values: list[float] | None = None) -> None:
        self._numel, self.dtype = numel, dt
        self.values = values if values is not None else ([1.0] if numel == 1 else [])

    def numel(self) -> int:
        return self._numel

    def nbytes(self) -> int:
        return self._numel * self.dtype.itemsize

    def item(self) -> float:
        return self.values[0]


def ones(numel: int, dtype: dtype = float64, device: object = None) -> Tensor:
    return Tensor(numel, dtype)


def tensor(values: list[float], dtype: dtype = float64, device: object = None) -> Tensor:
    return Tensor(len(values), dtype, [float(v) for v in values])
