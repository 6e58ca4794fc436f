"""Measuring the live tensor memory of torch code on the CPU (tracemalloc cannot see torch's allocations).

:class:`LiveTensorBytes` is a ``TorchDispatchMode`` that counts the storage bytes of every CPU tensor an aten op
returns while it is active: views and in-place results are not double counted, and a storage is released when
the last tensor seen on it is garbage collected. Storages made outside the mode (weights, inputs) are not
counted, nor are kernel-internal scratch buffers. On CUDA use ``torch.cuda.max_memory_allocated`` instead.

    with torch.no_grad(), LiveTensorBytes() as meter:
        model(x, t)
    meter.peak  # bytes
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorBytes(TorchDispatchMode):
    """Current and peak bytes of live CPU tensor storages created by aten ops inside the mode.

    Attributes:
        current: bytes alive now.
        peak: high-water mark of ``current`` since the mode was created.
    """

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, list[int]] = {}  # storage id -> [nbytes, tensors seen alive]
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.refs.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                continue
            key = t.untyped_storage()._cdata
            if key in self.refs:
                self.refs[key][1] += 1
            elif key in inputs:
                continue  # a view / in-place result of a storage allocated outside the mode (weights, inputs)
            else:
                nbytes = t.untyped_storage().nbytes()
                self.refs[key] = [nbytes, 1]
                self.current += nbytes
                self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._release, key)
        return out
