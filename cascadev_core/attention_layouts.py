"""Grid / window attention layouts of the CascadeV DiT.

One mechanism covers every layout: the ``L*Hp*Wp`` tokens of a video (frame-major, then row, then column) are
cut into ``nt x nh x nw`` contiguous groups (``nt`` chunks of frames, ``nh x nw`` spatial windows); each group
is an independent attention sequence (token order inside a group: frame, row, column; group order: chunk,
row-window, column-window, exactly as the official ``PixArt.forward``). Only attention is restricted: all other
block operations are per token. A layout is a list of per-block entries, block ``i`` using
``entries[i % len(entries)]`` (the official ``attn_strides`` rule). An entry is one of

* :class:`FullAttention` -- written ``None``, ``"full"`` or ``[1, 1]``: full 3-D attention over the video;
* :class:`GridPartition` ``[ts, xs]`` (the official form) -- ``ts`` chunks of ``L/ts`` frames times
  ``xs x xs`` windows of ``(Hp/xs) x (Wp/xs)`` tokens. ``[1, 4]`` = 16 spatial windows spanning all frames,
  ``[4, 1]`` = 4 chunks of 2 frames spanning the whole frame;
* :class:`WindowPartition` ``{"window": [t, h, w]}`` (or ``"5x8x8"`` / a 3-list) -- window SIZE in tokens along
  frames, rows, columns (W.A.L.T. style); ``None`` / ``"*"`` for one axis means the whole axis.

Presets (:data:`LAYOUT_PRESETS`):

* ``"official"`` -- the released 28-block schedule: ``[1,4],[4,1]`` x4, four full, ``[1,4],[4,1]`` x4,
  eight full. Attention FLOPs at 8 frames x 64x64 tokens: 0.518 of all-full (see :func:`attention_cost`).
* ``"full"`` -- every block full 3-D attention (the official ``attn_strides=None``).
* ``"paper"`` -- the rule of the CascadeV paper (Sec. 3.3, Fig. 3): blocks alternate between a spatial grid of
  ``P x P`` windows spanning all frames and a temporal grid whose number of chunks is the SQUARE of the
  spatial split, ``P^2`` chunks spanning the whole frame, so that every attention sequence holds
  ``F*H*W/P^2`` tokens and each block costs ``1/P^2`` of full attention. The paper gives neither ``P`` nor
  any full blocks; ``"paper"`` = ``[[1, 2], [4, 1]]`` cycled over all blocks, ``P = 2`` being the only
  ``P > 1`` with ``P^2`` dividing the 8 latent frames of a window (cost 0.25 of full). ``"paper:P"`` builds
  it for another ``P`` (e.g. ``"paper:4"`` = ``[[1, 4], [16, 1]]``, needs 16 frames). The released
  weights were trained with ``"official"``, which does not follow this rule (16 windows vs 4 chunks).
* ``"walt"`` -- W.A.L.T. (Gupta et al. 2023, Sec. 4.2 / 5.2 defaults): alternating spatial windows of
  1x16x16 tokens and spatio-temporal windows of 5x8x8 tokens. Taken literally: 5 does not divide 8 latent
  frames, so it raises for the released 8-frame windows; it needs frames divisible by 5 (in W.A.L.T. the
  1x16x16 window was a whole 16x16 latent frame and the 5 frames were the 1 + 4 frames of its causal VAE).

Indivisible sizes raise ValueError naming the block, the entry and the sizes; nothing is padded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange


# --------------------------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class Partition:
    """Base class of a per-block attention entry: splits a ``frames x height x width`` token grid."""

    def split(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Numbers of groups ``(nt, nh, nw)`` along frames, token rows, token columns.

        Raises:
            ValueError: an extent is not divisible (message without block context; see :func:`group_counts`).
        """
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``full``, ``grid[1,4]``, ``window 5x8x8``."""
        raise NotImplementedError

    def to_json(self) -> Any:
        """Plain JSON form accepted back by :func:`parse_entry`."""
        raise NotImplementedError


@dataclass(frozen=True)
class FullAttention(Partition):
    """Full 3-D attention over all tokens of a video."""

    def split(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        return 1, 1, 1

    @property
    def label(self) -> str:
        return "full"

    def to_json(self) -> Any:
        return None


@dataclass(frozen=True)
class GridPartition(Partition):
    """Official grid entry ``[ts, xs]``: ``ts`` frame chunks times ``xs x xs`` spatial windows (counts)."""

    ts: int
    xs: int

    def __post_init__(self) -> None:
        for name in ("ts", "xs"):
            _positive_int(getattr(self, name), f"GridPartition.{name}")

    def split(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        bad = []
        if frames % self.ts:
            bad.append(f"{frames} frames into ts={self.ts} chunks")
        if height % self.xs:
            bad.append(f"{height} token rows into xs={self.xs} windows")
        if width % self.xs:
            bad.append(f"{width} token columns into xs={self.xs} windows")
        if bad:
            raise ValueError("cannot split " + "; ".join(bad))
        return self.ts, self.xs, self.xs

    @property
    def label(self) -> str:
        return f"grid[{self.ts},{self.xs}]"

    def to_json(self) -> Any:
        return [self.ts, self.xs]


@dataclass(frozen=True)
class WindowPartition(Partition):
    """Window-size entry: windows of ``t x h x w`` tokens (``None`` = the whole axis)."""

    t: int | None
    h: int | None
    w: int | None

    def __post_init__(self) -> None:
        for name in ("t", "h", "w"):
            if getattr(self, name) is not None:
                _positive_int(getattr(self, name), f"WindowPartition.{name}")

    def split(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        counts, bad = [], []
        for name, size, extent in (("t", self.t, frames), ("h", self.h, height), ("w", self.w, width)):
            size = extent if size is None else size
            if extent % size:
                bad.append(f"{name}: {extent} tokens into windows of {size}")
            counts.append(extent // size)
        if bad:
            raise ValueError("cannot split " + "; ".join(bad))
        return counts[0], counts[1], counts[2]

    @property
    def label(self) -> str:
        return "window " + "x".join("*" if v is None else str(v) for v in (self.t, self.h, self.w))

    def to_json(self) -> Any:
        return {"window": [self.t, self.h, self.w]}


FULL = FullAttention()

Entry = Partition | None | str | Sequence[Any] | dict
"""One per-block entry in any accepted spelling (see :func:`parse_entry`)."""
LayoutSpec = str | None | Sequence[Entry]
"""A layout: preset name, None (all full) or a list of entries."""


# --------------------------------------------------------------------------------------------- presets
def paper_layout(p: int = 2) -> tuple[list[int], list[int]]:
    """The CascadeV paper's rule for split ``P``: ``[[1, P], [P*P, 1]]`` (P x P windows, then P^2 chunks).

    Args:
        p: spatial split per axis (P >= 2).

    Returns:
        the two alternating entries, cycled over all blocks by :func:`resolve_layout`.
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 2:
        raise ValueError(f"paper layout needs an integer P >= 2, got {p!r}")
    return [1, p], [p * p, 1]


_S, _T = [1, 4], [4, 1]
LAYOUT_PRESETS: dict[str, tuple[Entry, ...]] = {
    "official": tuple([_S, _T] * 4 + [None] * 4 + [_S, _T] * 4 + [None] * 8),
    "full": (None,),
    "paper": paper_layout(2),
    "walt": ({"window": [1, 16, 16]}, {"window": [5, 8, 8]}),
}
"""Named layouts (raw entry lists, cycled over the depth). See the module docstring."""


# --------------------------------------------------------------------------------------------- parsing
def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise ValueError(f"{where}: expected a positive integer, got {value!r}")
    return int(value)


def parse_entry(raw: Entry, index: int | None = None) -> Partition:
    """Normalise one layout entry to a :class:`Partition`.

    Args:
        raw: ``None`` / ``"full"`` / ``[1, 1]`` (full), ``[ts, xs]`` (grid counts), ``{"grid": [ts, xs]}``,
            ``{"window": [t, h, w]}`` / ``"TxHxW"`` / ``[t, h, w]`` (window sizes, ``None`` or ``"*"`` = whole
            axis), or a :class:`Partition`.
        index: position in the layout list (for error messages).

    Returns:
        the Partition.
    """
    where = "layout entry" if index is None else f"layout entry #{index}"
    where = f"{where} {raw!r}"
    if raw is None or isinstance(raw, FullAttention):
        return FULL
    if isinstance(raw, Partition):
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text == "full":
            return FULL
        match = re.fullmatch(r"(\d+|\*)x(\d+|\*)x(\d+|\*)", text)
        if not match:
            raise ValueError(f"{where}: a string entry must be 'full' or a window size 'TxHxW' like '5x8x8'")
        t, h, w = (None if g == "*" else int(g) for g in match.groups())
        return _window(t, h, w, where)
    if isinstance(raw, dict):
        if set(raw) == {"grid"}:
            return _grid(raw["grid"], where)
        if set(raw) == {"window"}:
            vals = raw["window"]
            if not isinstance(vals, Sequence) or isinstance(vals, str) or len(vals) != 3:
                raise ValueError(f"{where}: 'window' needs three sizes [t, h, w]")
            return _window(*vals, where=where)
        raise ValueError(f"{where}: a dict entry must be {{'grid': [ts, xs]}} or {{'window': [t, h, w]}}")
    if isinstance(raw, Sequence):
        if len(raw) == 2:
            return _grid(raw, where)
        if len(raw) == 3:
            return _window(*raw, where=where)
    raise ValueError(
        f"{where}: expected None/'full', [ts, xs] (grid counts) or a window size [t, h, w] / {{'window': ...}}"
    )


def _grid(vals: Any, where: str) -> Partition:
    if not isinstance(vals, Sequence) or isinstance(vals, str) or len(vals) != 2:
        raise ValueError(f"{where}: a grid entry needs two counts [ts, xs]")
    ts = _positive_int(vals[0], f"{where} ts")
    xs = _positive_int(vals[1], f"{where} xs")
    return FULL if ts == xs == 1 else GridPartition(ts, xs)


def _window(t: Any, h: Any, w: Any, where: str) -> Partition:
    sizes = [None if v in (None, "*") else _positive_int(v, f"{where} window size") for v in (t, h, w)]
    return WindowPartition(*sizes)


def _named(name: str) -> Sequence[Entry]:
    key = name.strip().lower()
    if key in LAYOUT_PRESETS:
        return LAYOUT_PRESETS[key]
    match = re.fullmatch(r"paper:(\d+)", key)
    if match:
        return paper_layout(int(match.group(1)))
    raise ValueError(
        f"unknown attention layout {name!r}; presets: {', '.join(LAYOUT_PRESETS)} (or 'paper:P', or a list)"
    )


def resolve_layout(layout: LayoutSpec, depth: int) -> tuple[Partition, ...]:
    """Per-block entries for a model of ``depth`` blocks (``entries[i % len(entries)]`` like the official code).

    Args:
        layout: preset name, ``None`` (all full) or a list of entries (see :func:`parse_entry`).
        depth: number of blocks.

    Returns:
        ``depth`` Partition objects, one per block.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    if layout is None:
        return (FULL,) * depth
    raw = _named(layout) if isinstance(layout, str) else layout
    if isinstance(raw, Partition) or not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ValueError(f"attention layout must be a preset name, None or a list of entries, got {layout!r}")
    if len(raw) == 0:
        raise ValueError("attention layout list is empty")
    entries = [parse_entry(item, i) for i, item in enumerate(raw)]
    return tuple(entries[i % len(entries)] for i in range(depth))


def layout_to_json(layout: LayoutSpec) -> Any:
    """Plain JSON form of a layout spec (preset names stay names)."""
    if layout is None or isinstance(layout, str):
        return layout
    return [parse_entry(item, i).to_json() for i, item in enumerate(layout)]


def describe_layout(layout: LayoutSpec, depth: int) -> list[str]:
    """Per-block labels, e.g. ``['grid[1,4]', 'grid[4,1]', 'full', ...]`` (for UIs and logs)."""
    return [entry.label for entry in resolve_layout(layout, depth)]


# --------------------------------------------------------------------------------------------- tokens
def group_counts(
    entry: Partition, frames: int, height: int, width: int, block: int | None = None
) -> tuple[int, int, int]:
    """``(nt, nh, nw)`` for a ``frames x height x width`` token grid, with an error that names the block.

    Args:
        entry: the block's Partition.
        frames, height, width: latent frames per video L and token rows / columns (Hp, Wp).
        block: block index, for the error message.

    Returns:
        numbers of groups along frames, rows, columns.
    """
    try:
        return entry.split(frames, height, width)
    except ValueError as err:
        who = "attention layout" if block is None else f"attention layout of block {block}"
        raise ValueError(
            f"{who}, entry {entry.label} ({entry.to_json()!r}), token grid {frames} frames x {height} x {width}: {err}"
        ) from None


def partition_tokens(
    x: torch.Tensor, entry: Partition, frames: int, height: int, width: int, block: int | None = None
) -> tuple[torch.Tensor, int]:
    """Cut video token sequences into attention groups.

    Args:
        x: ``[B, L*Hp*Wp, D]`` tokens of B videos (index ``f*Hp*Wp + i*Wp + j``).
        entry: the block's Partition; frames = L, height = Hp, width = Wp.
        block: block index for error messages.

    Returns:
        ``([B*G, L*Hp*Wp/G, D], G)``: group ``g`` of video ``b`` is row ``b*G + g`` (group order: frame
        chunk, row window, column window; token order inside a group: frame, row, column).
    """
    nt, nh, nw = group_counts(entry, frames, height, width, block)
    _check_tokens(x, frames, height, width)
    if nt * nh * nw == 1:
        return x, 1
    out = rearrange(
        x, "b (nt gt nh gh nw gw) d -> (b nt nh nw) (gt gh gw) d", nt=nt, nh=nh, nw=nw,
        gt=frames // nt, gh=height // nh, gw=width // nw,
    )  # fmt: skip
    return out, nt * nh * nw


def unpartition_tokens(
    x: torch.Tensor, entry: Partition, frames: int, height: int, width: int, block: int | None = None
) -> torch.Tensor:
    """Inverse of :func:`partition_tokens`: ``[B*G, L*Hp*Wp/G, D] -> [B, L*Hp*Wp, D]``."""
    nt, nh, nw = group_counts(entry, frames, height, width, block)
    if nt * nh * nw == 1:
        return x
    return rearrange(
        x, "(b nt nh nw) (gt gh gw) d -> b (nt gt nh gh nw gw) d", nt=nt, nh=nh, nw=nw,
        gt=frames // nt, gh=height // nh, gw=width // nw,
    )  # fmt: skip


def _check_tokens(x: torch.Tensor, frames: int, height: int, width: int) -> None:
    if x.ndim != 3 or x.shape[1] != frames * height * width:
        raise ValueError(
            f"expected tokens [B, {frames}*{height}*{width}={frames * height * width}, D], got {tuple(x.shape)}"
        )


def block_diagonal_mask(
    entry: Partition, frames: int, height: int, width: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean ``[S, S]`` mask (S = L*Hp*Wp, True = may attend) equivalent to the entry's partition.

    Full attention with this mask equals grouped attention. For tests and benchmarks only: it is O(S^2).
    """
    nt, nh, nw = group_counts(entry, frames, height, width)
    f = torch.arange(frames, device=device) // (frames // nt)
    i = torch.arange(height, device=device) // (height // nh)
    j = torch.arange(width, device=device) // (width // nw)
    gid = ((f[:, None, None] * nh + i[None, :, None]) * nw + j[None, None, :]).reshape(-1)
    return gid[:, None] == gid[None, :]


# --------------------------------------------------------------------------------------------- cost
@dataclass(frozen=True)
class AttentionCost:
    """Estimated FLOPs of one forward of the block stack over one video (multiply-add = 2 FLOPs).

    ``attention_*`` counts only the two attention matmuls (``Q K^T`` and ``P V``: ``4 * S * n * D`` per block
    with ``n`` tokens per group), the part the layout changes. ``block_*`` adds the per-token linear layers
    (qkv, proj, MLP: ``2 * S * (4 D^2 + 2 D * D_mlp)`` per block), which every layout pays in full.
    Softmax, norms and element-wise work are ignored.
    """

    tokens: int
    group_tokens: tuple[int, ...]
    attention_flops: float
    full_attention_flops: float
    block_flops: float
    full_block_flops: float

    @property
    def ratio(self) -> float:
        """Attention FLOPs relative to all-full 3-D attention (the number grid attention is sold on)."""
        return self.attention_flops / self.full_attention_flops

    @property
    def block_ratio(self) -> float:
        """Whole block-stack FLOPs relative to the all-full stack (what wall time can at best approach)."""
        return self.block_flops / self.full_block_flops


def attention_cost(
    layout: LayoutSpec,
    frames: int,
    height: int,
    width: int,
    depth: int = 28,
    hidden_size: int = 1152,
    mlp_ratio: float = 4.0,
) -> AttentionCost:
    """Estimate the attention cost of a layout on a ``frames x height x width`` token grid.

    Args:
        layout: preset name, None or list of entries.
        frames, height, width: L, Hp, Wp of one video (e.g. 8 x 64 x 64 for a 128x128 latent tile).
        depth, hidden_size, mlp_ratio: model sizes (released: 28, 1152, 4.0).

    Returns:
        :class:`AttentionCost`; ``.ratio`` is 0.518 for ``"official"`` at 8 x 64 x 64.
    """
    s = frames * height * width
    groups = []
    for block, entry in enumerate(resolve_layout(layout, depth)):
        nt, nh, nw = group_counts(entry, frames, height, width, block)
        groups.append(s // (nt * nh * nw))
    d = float(hidden_size)
    linear = depth * 2.0 * s * (4 * d * d + 2 * d * int(hidden_size * mlp_ratio))
    attn = sum(4.0 * s * n * d for n in groups)
    full = depth * 4.0 * s * s * d
    return AttentionCost(s, tuple(groups), attn, full, attn + linear, full + linear)
