"""The frame size the cascade works at, chosen from the input size before any model work.

CascadeV refines at the size of the frames the effnet encoder sees (its latents are 1/32 of the frames, upsampled
4x to SD-latent size, 1/8 of the frames). Any input size is accepted: :func:`cascade_size` scales it, keeping the
aspect ratio, so that both sides are multiples of 32 (the effnet stride) and the short side covers at least one
spatial tile of the model (``input_size * 8`` pixels: 1024 for the released model). Every check speaks in pixels
and names the setting that fixes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EFFNET_STRIDE = 32  # pixels per effnet latent
VAE_STRIDE = 8  # pixels per SD-VAE latent
RESIZE_MODES = ("auto", "long_side", "scale", "none")


@dataclass(frozen=True)
class CascadeSize:
    """Where a ``height x width`` input goes: ``(height, width)`` of the refined frames, and why."""

    height: int
    width: int
    source: tuple[int, int]
    mode: str

    @property
    def resized(self) -> bool:
        return (self.height, self.width) != self.source

    @property
    def latent(self) -> tuple[int, int]:
        """SD-latent size of the refined frames ``(height / 8, width / 8)``."""
        return self.height // VAE_STRIDE, self.width // VAE_STRIDE


def tile_pixels(input_size: int) -> int:
    """Pixels one spatial tile of the model covers (``input_size`` latent pixels x 8)."""
    return input_size * VAE_STRIDE


def _round_to_stride(value: float, up: bool) -> int:
    steps = math.ceil(value / EFFNET_STRIDE - 1e-9) if up else round(value / EFFNET_STRIDE)
    return max(1, steps) * EFFNET_STRIDE


def cascade_size(
    height: int, width: int, *, mode: str = "auto", value: float = 0.0, tile: int = 1024, where: str = "resize"
) -> CascadeSize:
    """Choose the refined frame size for ``height x width`` input frames.

    Args:
        height, width: input frame size in pixels.
        mode: ``"auto"`` (scale up, never down, until the short side covers one tile; both sides rounded UP to
            multiples of 32), ``"long_side"`` (scale so the long side is ``value`` pixels, e.g. 2048 for 2K),
            ``"scale"`` (times ``value``), ``"none"`` (the input size as is; it must already fit). Explicit targets
            are rounded to the nearest multiple of 32.
        value: the target for ``"long_side"`` / ``"scale"``.
        tile: pixels of one model tile (:func:`tile_pixels`); the short side must cover it.
        where: how the caller's setting is named in errors (e.g. "CascadeV Encode Frames: resize").

    Raises:
        ValueError naming ``where`` with the sizes in pixels and the setting that fixes it.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"{where}: expected one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    if height < 1 or width < 1:
        raise ValueError(f"{where}: the frames are {width}x{height} pixels; expected a non-empty image")
    short, long = min(height, width), max(height, width)
    if mode == "auto":
        scale = max(1.0, tile / short)
        h, w = _round_to_stride(height * scale, up=True), _round_to_stride(width * scale, up=True)
    elif mode in ("long_side", "scale"):
        if not value > 0 or not math.isfinite(value):
            what = "the long side in pixels (e.g. 2048)" if mode == "long_side" else "a factor (e.g. 2.0)"
            raise ValueError(f"{where}: mode '{mode}' needs resize_value > 0: {what}; got {value}")
        scale = value / long if mode == "long_side" else value
        h, w = _round_to_stride(height * scale, up=False), _round_to_stride(width * scale, up=False)
    else:
        h, w = height, width
        if h % EFFNET_STRIDE or w % EFFNET_STRIDE:
            auto = cascade_size(height, width, tile=tile, where=where)
            raise ValueError(
                f"{where}: 'none' keeps the input's {width}x{height} pixels, but both sides must be multiples of "
                f"{EFFNET_STRIDE}; choose 'auto' (here {auto.width}x{auto.height}) or resize the frames first"
            )
    if min(h, w) < tile:
        need = math.ceil(tile * long / short)
        raise ValueError(
            f"{where}: {w}x{h} pixels is smaller than one model tile ({tile}x{tile} pixels); use 'auto', or a "
            f"long side of at least {need} pixels"
        )
    return CascadeSize(h, w, (height, width), mode)
