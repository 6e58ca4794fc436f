"""Plans for temporal windows and spatial tiles, and the accumulator that blends their results.

Everything here is pure planning over integer sizes plus one small accumulator; the refine loop and the tiled VAE
decode both use it.

Placement (one axis, :func:`axis_starts`): starts ``0, step, 2*step, ...`` while ``start + length < size``, then a
last span at ``size - length`` (the official rule, so spans never leave the input and the last one may overlap
its predecessor more). Official parameters: temporal windows ``length = lats_per_vid, step = length // 2``; spatial
tiles ``length = input_size, step = round(0.75 * input_size)``.

Blending modes (per plan):

* ``"overwrite"``: spans are written in order, later ones replace earlier ones (official spatial tiles,
  row-major).
* ``"crossfade"``: official temporal windows. Span k is lerped into the running result with weights
  ``[linspace(0, 1, overlap) (float32), 1, ...]`` where ``overlap = previous_stop - start``; an overlap < 2
  overwrites.
* ``"average"``: uniform weights, result = sum(w * value) / sum(w) (HPDM-style overlap averaging).
* ``"feather"``: like average, but each span's weight ramps linearly across the region it shares with its
  neighbours (``(k+1)/(o+1)`` up, mirrored down), 1 elsewhere and at the input border; two spans overlapping by
  ``o`` get weights summing to exactly 1 there. Weights are always > 0, so the normalisation never divides by 0.

Too-small inputs raise ``ValueError`` naming the input; :func:`pad_axis` is the explicit alternative (pad, run,
then crop with :func:`crop_axis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

BLEND_MODES = ("overwrite", "crossfade", "average", "feather")
TILE_BLEND_MODES = ("overwrite", "average", "feather")
PAD_MODES = ("replicate", "reflect")


@dataclass(frozen=True)
class Span:
    """A 1-D interval ``[start, stop)`` with its blend weights ``[stop - start]`` (float32), or None (overwrite)."""

    start: int
    stop: int
    weight: torch.Tensor | None

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Tile:
    """A 2-D tile: ``rows`` and ``cols`` spans; ``weight`` is ``[h, w]`` (outer product) or None (overwrite)."""

    rows: Span
    cols: Span

    @property
    def weight(self) -> torch.Tensor | None:
        if self.rows.weight is None or self.cols.weight is None:
            return None
        return self.rows.weight[:, None] * self.cols.weight[None, :]

    @property
    def index(self) -> tuple:
        """``(..., rows, cols)``: indexes the last two dims of any ``[..., H, W]`` tensor."""
        return ..., self.rows.slice, self.cols.slice


def check_min_size(size: int, length: int, name: str, what: str) -> None:
    """Raise ``ValueError`` naming ``name`` when ``size < length``."""
    if size < length:
        raise ValueError(
            f"{name}: expected at least {length} ({what}), got {size}; use a smaller {what} or pad explicitly "
            f"(pad='replicate' or 'reflect')"
        )


def axis_starts(size: int, length: int, step: int, name: str = "size", what: str = "tile") -> list[int]:
    """Span starts along one axis: ``0, step, ...`` while ``start + length < size``, then ``size - length``.

    Raises ``ValueError`` naming ``name`` if ``size < length`` or ``step`` is not in ``[1, length]``.
    """
    if length < 1:
        raise ValueError(f"{what} length: expected >= 1, got {length}")
    check_min_size(size, length, name, what)
    if not 1 <= step <= length:
        raise ValueError(f"{what} step for {name}: expected 1 <= step <= {length} (no gaps), got {step}")
    starts, s = [], 0
    while s + length < size:
        starts.append(s)
        s += step
    starts.append(size - length)
    return starts


def _feather(n: int, before: int, after: int) -> np.ndarray:
    k = np.arange(n, dtype=np.float64)
    w = np.ones(n)
    if before > 0:
        w = np.minimum(w, (k + 1) / (before + 1))
    if after > 0:
        w = np.minimum(w, (n - k) / (after + 1))
    return w.astype(np.float32)


def span_weights(intervals: Sequence[tuple[int, int]], mode: str) -> list[torch.Tensor | None]:
    """Blend weights of consecutive ``(start, stop)`` intervals for ``mode`` (see module doc)."""
    if mode not in BLEND_MODES:
        raise ValueError(f"blend mode: expected one of {BLEND_MODES}, got {mode!r}")
    out: list[torch.Tensor | None] = []
    for k, (a, b) in enumerate(intervals):
        n = b - a
        prev_stop = intervals[k - 1][1] if k > 0 else a
        before = max(0, prev_stop - a)
        if mode == "overwrite":
            out.append(None)
        elif mode == "crossfade":
            if before < 2:
                out.append(None)
            else:
                w = np.ones(n, dtype=np.float32)
                w[:before] = np.linspace(0, 1, num=before, dtype=np.float32)
                out.append(torch.from_numpy(w))
        elif mode == "average":
            out.append(torch.ones(n, dtype=torch.float32))
        else:
            after = max(0, b - intervals[k + 1][0]) if k + 1 < len(intervals) else 0
            out.append(torch.from_numpy(_feather(n, before, after)))
    return out


def plan_axis(
    size: int, length: int, step: int, mode: str = "overwrite", name: str = "size", what: str = "tile"
) -> list[Span]:
    """Spans of ``length`` covering ``[0, size)`` with the given ``step`` and blend ``mode``."""
    intervals = [(s, s + length) for s in axis_starts(size, length, step, name, what)]
    return [Span(a, b, w) for (a, b), w in zip(intervals, span_weights(intervals, mode))]


def scale_spans(spans: Sequence[Span], factor: int, mode: str) -> list[Span]:
    """The same spans in a ``factor`` times finer grid (latent -> pixel), weights recomputed at that scale."""
    intervals = [(s.start * factor, s.stop * factor) for s in spans]
    return [Span(a, b, w) for (a, b), w in zip(intervals, span_weights(intervals, mode))]


def official_tile_step(tile: int) -> int:
    """``round(0.75 * tile)`` (Python rounding, as the official ``get_ind_slices``): 12 for 16, 96 for 128."""
    return round(0.75 * tile)


def step_from_overlap(length: int, overlap: int | None, default_step: int, what: str) -> int:
    """``length - overlap`` if an overlap is given, else ``default_step``; validates the overlap."""
    if overlap is None:
        return default_step
    if not 0 <= overlap < length:
        raise ValueError(f"{what} overlap: expected 0 <= overlap < {length}, got {overlap}")
    return length - overlap


def plan_windows(frames: int, window: int, stride: int | None = None, mode: str = "crossfade") -> list[Span]:
    """Temporal windows over ``frames`` (official: ``stride = window // 2``, ``mode="crossfade"``).

    12 frames, window 8 -> starts [0, 4]; the second window's weights are [0, 1/3, 2/3, 1, 1, 1, 1, 1].
    """
    stride = max(1, window // 2) if stride is None else stride
    return plan_axis(frames, window, stride, mode, name="frames", what="temporal window")


def plan_tiles(height: int, width: int, tile: int, step: int | None = None, mode: str = "overwrite") -> list[Tile]:
    """Square tiles of ``tile`` over ``[height, width]`` in row-major order (official step ``round(0.75*tile)``).

    A 20x32 latent with tile 16 gives rows [0, 4], cols [0, 12, 16].
    """
    if mode not in TILE_BLEND_MODES:
        raise ValueError(f"tile blend mode: expected one of {TILE_BLEND_MODES}, got {mode!r}")
    step = official_tile_step(tile) if step is None else step
    rows = plan_axis(height, tile, step, mode, name="height", what="spatial tile")
    cols = plan_axis(width, tile, step, mode, name="width", what="spatial tile")
    return [Tile(r, c) for r in rows for c in cols]


def scale_tiles(tiles: Sequence[Tile], factor: int, mode: str) -> list[Tile]:
    """Tiles of a latent plan mapped to a ``factor`` times finer grid (pixel space for the VAE decode)."""
    rows = list(dict.fromkeys(t.rows for t in tiles))
    cols = list(dict.fromkeys(t.cols for t in tiles))
    rmap = dict(zip(rows, scale_spans(rows, factor, mode)))
    cmap = dict(zip(cols, scale_spans(cols, factor, mode)))
    return [Tile(rmap[t.rows], cmap[t.cols]) for t in tiles]


# ---------------------------------------------------------------------------------------------------------------
# Accumulator
# ---------------------------------------------------------------------------------------------------------------


class Blender:
    """Blends pieces into a preallocated float tensor ``out`` following a plan's mode.

    ``add(index, value, weight)`` with ``index`` a tuple of slices into ``out`` (numpy rules: missing trailing
    dims are whole, ``...`` allowed, e.g. ``(frames,)`` or ``(..., rows, cols)``),
    ``value`` of the indexed shape and ``weight`` broadcastable to it, right-aligned (None = overwrite). Pieces must be added in
    plan order. ``result()`` returns ``out`` (normalised in place for average/feather). For average/feather the
    summed weights are kept only along the dims the weights vary in (e.g. ``[1, 1, H, W]`` for spatial tiles).
    """

    def __init__(self, out: torch.Tensor, mode: str):
        if mode not in BLEND_MODES:
            raise ValueError(f"blend mode: expected one of {BLEND_MODES}, got {mode!r}")
        if not out.is_floating_point():
            raise ValueError(f"out: expected a floating-point accumulator, got {out.dtype}")
        self.out = out
        self.mode = mode
        self.weighted = mode in ("average", "feather")
        self.wsum: torch.Tensor | None = None
        if self.weighted:
            out.zero_()

    def _full_index(self, index: tuple) -> tuple[slice, ...]:
        index = tuple(index)
        if Ellipsis in index:
            k = index.index(Ellipsis)
            fill = (slice(None),) * (self.out.ndim - len(index) + 1)
            return index[:k] + fill + index[k + 1 :]
        return index + (slice(None),) * (self.out.ndim - len(index))

    def add(self, index: tuple[slice, ...], value: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        idx = self._full_index(index)
        dst = self.out[idx]
        value = value.to(dst.dtype)
        if not self.weighted:
            if weight is None or self.mode == "overwrite":
                dst.copy_(value)
            else:  # official crossfade: z = z * (1 - w) + new * w
                w = weight.to(device=dst.device, dtype=dst.dtype)
                dst.copy_(dst * (1.0 - w) + value * w)
            return
        if weight is None:
            raise ValueError(f"blend mode {self.mode!r} needs a weight for every piece")
        w = weight.to(device=dst.device, dtype=dst.dtype)
        w = w.reshape((1,) * (dst.ndim - w.ndim) + tuple(w.shape))
        if self.wsum is None:
            shape = [1 if w.shape[d] == 1 else self.out.shape[d] for d in range(self.out.ndim)]
            self.wsum = torch.zeros(shape, dtype=dst.dtype, device=dst.device)
        widx = tuple(slice(None) if self.wsum.shape[d] == 1 else idx[d] for d in range(self.out.ndim))
        dst.add_(value * w)
        self.wsum[widx] += w

    def result(self) -> torch.Tensor:
        if self.weighted and self.wsum is not None:
            self.out.div_(self.wsum)
        return self.out


# ---------------------------------------------------------------------------------------------------------------
# Explicit padding
# ---------------------------------------------------------------------------------------------------------------


def pad_axis(x: torch.Tensor, dim: int, min_size: int, mode: str) -> torch.Tensor:
    """Pad ``x`` at the END of ``dim`` up to ``min_size`` (``"replicate"`` or ``"reflect"``); no-op if large enough.

    Reflect padding mirrors without repeating the edge (needs ``size > pad``; falls back to cycling reflections).
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad: expected one of {PAD_MODES}, got {mode!r}")
    n = x.shape[dim]
    if n >= min_size:
        return x
    if mode == "replicate":
        idx = [min(i, n - 1) for i in range(min_size)]
    else:
        period = max(1, 2 * (n - 1))
        idx = [(i % period) if (i % period) < n else period - (i % period) for i in range(min_size)]
    return x.index_select(dim, torch.as_tensor(idx, device=x.device))


def crop_axis(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Undo :func:`pad_axis`: keep the first ``size`` entries of ``dim``."""
    return x.narrow(dim, 0, size)


__all__ = [
    "BLEND_MODES",
    "TILE_BLEND_MODES",
    "PAD_MODES",
    "Span",
    "Tile",
    "Blender",
    "axis_starts",
    "span_weights",
    "plan_axis",
    "plan_windows",
    "plan_tiles",
    "scale_spans",
    "scale_tiles",
    "official_tile_step",
    "step_from_overlap",
    "check_min_size",
    "pad_axis",
    "crop_axis",
]
