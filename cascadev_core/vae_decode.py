"""Memory-bounded VAE decoding of refined latents: temporal slices x spatial tiles, blended in pixel space.

The official ``lat2vid.py`` decodes ``[B, 4, T, H, W]`` latents with the SVD temporal decoder in slices of 4 frames
(5 when T = 25) of the whole frame. Here each slice can also be cut into overlapping square latent tiles whose
decoded pixels are blended (feather by default, see :mod:`cascadev_core.tiling`), so a 2K video never needs a
whole frame in one decoder call. On out-of-memory the current slice is retried with smaller tiles (halved down to
``min_tile``), then fewer frames per slice (halved down to 1), before the error is re-raised.

The decoder is a plain callable ``decode(latents [n, 4, h, w]) -> pixels [n, C, s*h, s*w]`` over the ``n``
consecutive frames of one video (for the SVD decoder: ``vae.decode(z, num_frames=z.shape[0]).sample``); the pixel
scale ``s`` (8 for SVD) is read from the first call. Results are float32 pixels as the decoder returns them
(SVD: [-1, 1]). Pass the decoder itself, not a wrapper that re-batches frames or handles out-of-memory on its own
(ComfyUI's ``VAE.decode`` does both): a temporal decoder must see exactly the slices planned here, and the OOM
fallback below only works when the error reaches it (``bench/bench_decode.py`` measures both).

Progress: one unit per decoder call; the total is re-estimated when an OOM changes the plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .progress import Progress, StepCallback, StopHook
from .tiling import TILE_BLEND_MODES, Blender, plan_tiles, scale_tiles

DecodeFn = Callable[[torch.Tensor], torch.Tensor]

_OOM_TEXT = ("out of memory", "mps backend out of memory", "failed to allocate", "cudnn_status_alloc_failed")


def is_oom(err: BaseException) -> bool:
    """True for ``torch.OutOfMemoryError`` and the RuntimeErrors other backends (MPS, XPU...) raise on OOM."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(s in str(err).lower() for s in _OOM_TEXT)


def _free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


@dataclass
class DecodePlan:
    """Current slicing: ``frames`` per decoder call and square latent ``tile`` (None = whole frame)."""

    frames: int
    tile: int | None
    overlap: int
    min_tile: int

    def shrink(self, height: int, width: int) -> bool:
        """Make the plan smaller after an OOM: halve the tile, then the frames. False when nothing is left."""
        current = self.tile if self.tile is not None else max(height, width)
        smaller = min(current // 2, height, width)
        if smaller >= self.min_tile and smaller < current:
            self.tile = smaller
            self.overlap = min(self.overlap, smaller // 2)
            return True
        if self.frames > 1:
            self.frames = max(1, self.frames // 2)
            return True
        return False


def _tiles(plan: DecodePlan, height: int, width: int, blend: str):
    if plan.tile is None or (plan.tile >= height and plan.tile >= width):
        return None
    tile = min(plan.tile, height, width)
    overlap = min(plan.overlap, tile - 1)
    return plan_tiles(height, width, tile, tile - overlap, blend)


def _calls(plan: DecodePlan, frames: int, height: int, width: int, blend: str) -> int:
    tiles = _tiles(plan, height, width, blend)
    return math.ceil(frames / plan.frames) * (1 if tiles is None else len(tiles))


class _Decoder:
    def __init__(self, decode: DecodeFn, blend: str, progress: Progress):
        self.decode = decode
        self.blend = blend
        self.progress = progress
        self.scale: int | None = None

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        self.progress.check()
        y = self.decode(z)
        self.progress.advance()
        if y.ndim != 4 or y.shape[0] != z.shape[0]:
            raise ValueError(f"decode output: expected [{z.shape[0]}, C, h*s, w*s], got {tuple(y.shape)}")
        sh, sw = y.shape[2] / z.shape[2], y.shape[3] / z.shape[3]
        if sh != sw or sh != int(sh) or sh < 1:
            raise ValueError(f"decode output: {tuple(y.shape[2:])} is not an integer multiple of {tuple(z.shape[2:])}")
        if self.scale is None:
            self.scale = int(sh)
        elif int(sh) != self.scale:
            raise ValueError(f"decode output: scale changed from {self.scale} to {int(sh)}")
        return y.float()

    def slice(self, z: torch.Tensor, plan: DecodePlan) -> torch.Tensor:
        """``z [n, 4, h, w]`` -> pixels ``[n, C, s*h, s*w]`` (float32), tiled per ``plan``."""
        n, _, h, w = z.shape
        tiles = _tiles(plan, h, w, self.blend)
        if tiles is None:
            return self._call(z)
        first = self._call(z[(..., *tiles[0].index[1:])])
        s = self.scale
        ptiles = scale_tiles(tiles, s, self.blend)
        acc = Blender(
            torch.empty(n, first.shape[1], h * s, w * s, dtype=torch.float32, device=first.device), self.blend
        )
        acc.add(ptiles[0].index, first, ptiles[0].weight)
        del first
        for lt, pt in zip(tiles[1:], ptiles[1:]):
            acc.add(pt.index, self._call(z[lt.index]), pt.weight)
        return acc.result()


def iter_decode(
    decode: DecodeFn,
    latents: torch.Tensor,
    *,
    frames_per_call: int = 4,
    tile: int | None = None,
    overlap: int = 8,
    blend: str = "feather",
    min_tile: int = 16,
    on_step: StepCallback | None = None,
    should_stop: StopHook | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Decode ``latents [B, 4, T, H, W]`` slice by slice; yields ``(video, first_frame, pixels [C, n, s*H, s*W])``.

    Args:
        decode: ``decode(z [n, 4, h, w]) -> [n, C, s*h, s*w]`` for n consecutive frames of one video.
        latents: refined latents (already divided by the scale factor).
        frames_per_call: frames per decoder call (official 4; the last slice of a video may be shorter).
        tile: square latent tile (None: whole frames). ``overlap``: latent pixels shared by neighbouring tiles.
        blend: ``"feather"`` | ``"average"`` | ``"overwrite"`` for the overlaps (in pixel space).
        min_tile: smallest tile the OOM fallback will try.
        on_step, should_stop: progress hooks (one unit per decoder call).

    Only one slice's pixels (float32) exist at a time besides what the caller keeps.
    """
    if latents.ndim != 5:
        raise ValueError(f"latents: expected [B, C, T, H, W], got shape {tuple(latents.shape)}")
    if blend not in TILE_BLEND_MODES:
        raise ValueError(f"blend: expected one of {TILE_BLEND_MODES}, got {blend!r}")
    if frames_per_call < 1:
        raise ValueError(f"frames_per_call: expected >= 1, got {frames_per_call}")
    if tile is not None and tile < 1:
        raise ValueError(f"tile: expected None or >= 1, got {tile}")
    if overlap < 0:
        raise ValueError(f"overlap: expected >= 0, got {overlap}")
    b, _, t, h, w = latents.shape
    plan = DecodePlan(frames_per_call, tile, overlap, max(1, min(min_tile, h, w)))
    progress = Progress(b * _calls(plan, t, h, w, blend), on_step, should_stop)
    dec = _Decoder(decode, blend, progress)
    for v in range(b):
        f0 = 0
        while f0 < t:
            n = min(plan.frames, t - f0)
            z = latents[v, :, f0 : f0 + n].permute(1, 0, 2, 3)
            oom = None
            try:
                pix = dec.slice(z, plan)
            except Exception as err:
                if not is_oom(err):
                    raise
                oom = str(err).splitlines()[0] if str(err) else type(err).__name__
            if oom is not None:  # outside the except block: the traceback's tensors are released by now
                _free_memory()
                tried = f"tile {plan.tile}, {plan.frames} frame(s) per call"
                if not plan.shrink(h, w):
                    raise torch.OutOfMemoryError(f"VAE decode out of memory even with {tried}: {oom}")
                rest = (b - v - 1) * _calls(plan, t, h, w, blend) + _calls(plan, t - f0, h, w, blend)
                progress.total = progress.done + rest
                continue
            yield v, f0, pix.permute(1, 0, 2, 3)
            del pix
            f0 += n


def to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """Decoder pixels in [-1, 1] -> uint8 ``round((clamp(x, -1, 1) + 1) * 127.5)``."""
    return ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def decode_latents(
    decode: DecodeFn,
    latents: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float32,
    **kwargs,
) -> torch.Tensor:
    """Decode ``latents [B, 4, T, H, W]`` into ``[B, C, T, s*H, s*W]`` (see :func:`iter_decode` for ``kwargs``).

    ``out``: optional preallocated output (any device); uint8 outputs receive :func:`to_uint8` of the pixels,
    floating outputs the raw pixels cast to their dtype. Without ``out`` one of ``out_dtype`` is allocated on
    the CPU after the first slice. Peak extra memory is one slice (float32) plus the output.
    """
    for v, f0, pix in iter_decode(decode, latents, **kwargs):
        c, n, ph, pw = pix.shape
        if out is None:
            b, _, t = latents.shape[:3]
            out = torch.empty((b, c, t, ph, pw), dtype=out_dtype)
        elif out.shape[0:2] != (latents.shape[0], c) or out.shape[2] != latents.shape[2] or out.shape[3:] != (ph, pw):
            want = [latents.shape[0], c, latents.shape[2], ph, pw]
            raise ValueError(f"out: expected shape {want}, got {list(out.shape)}")
        pix = to_uint8(pix) if out.dtype == torch.uint8 else pix
        out[v, :, f0 : f0 + n] = pix.to(device=out.device, dtype=out.dtype)
    if out is None:
        raise ValueError("latents: nothing to decode (zero frames or videos)")
    return out
