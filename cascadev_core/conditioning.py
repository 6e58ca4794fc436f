"""Semantic conditioning of the CascadeV DiT: effnet (or VAE) latents -> the 16 (or 4) extra input channels.

Official path (``recon/refine_latent.py``): effnet latents ``[B, 16, T, h, w]`` -> bilinear x4 upsampling
(``align_corners=False``) done per channel as ONE ``F.interpolate`` call on ``[B*16*T, 1, h, w]`` -> frame-major
``[B*T, 16, 4h, 4w]`` -> times ``scale_factor`` (0.13025). The DiT input is ``cat([noisy, cond], dim=1)``: noise
FIRST (channels 0:4), conditioning SECOND (channels 4:20).

Layout choice: :func:`conditioning_frames` returns the frame-major ``[B*T, C, H, W]`` tensor the DiT consumes
(row ``b*T + t`` = frame t of video b, the official ``z_ref``); :func:`upsample_spatial` keeps the video layout
``[B, C, T, H, W]`` for callers that slice in time first.

Resize path (the official ``encoder='tvae'`` training branch, and effnet with ``sr_scale > 4``): pixels are
downsampled with the same per-channel bilinear call, encoded by a caller-supplied VAE encode callable, and the
latents are upsampled back (:func:`resize_path_conditioning`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

SCALE_FACTOR = 0.13025
SR_SCALE = 4


def _check_video(x: torch.Tensor, name: str) -> None:
    if x.ndim != 5:
        raise ValueError(f"{name}: expected [B, C, T, H, W], got shape {tuple(x.shape)}")


def upsample_spatial(lat: torch.Tensor, scale: int = SR_SCALE) -> torch.Tensor:
    """``[B, C, T, h, w]`` -> ``[B, C, T, h*scale, w*scale]``, bilinear, align_corners=False, per channel.

    One ``F.interpolate`` on ``[B*C*T, 1, h, w]`` exactly like the official ``upsample`` (bitwise; the same
    upsampling on ``[T, C, h, w]`` differs by ~6e-8).
    """
    _check_video(lat, "cond_lowres")
    b, c, t, h, w = lat.shape
    rsz = F.interpolate(
        lat.reshape(b * c * t, 1, h, w), size=(h * scale, w * scale), mode="bilinear", align_corners=False
    )
    return rsz.reshape(b, c, t, h * scale, w * scale)


def downsample_spatial(video: torch.Tensor, scale: int = SR_SCALE) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B, C, T, H//scale, W//scale]``, bilinear, align_corners=False, per channel
    (the official ``downsample_spatial`` of ``train.py``; no antialiasing)."""
    _check_video(video, "video")
    b, c, t, h, w = video.shape
    if h // scale < 1 or w // scale < 1:
        raise ValueError(f"video: expected height and width >= {scale}, got {h}x{w}")
    rsz = F.interpolate(
        video.reshape(b * c * t, 1, h, w), size=(h // scale, w // scale), mode="bilinear", align_corners=False
    )
    return rsz.reshape(b, c, t, h // scale, w // scale)


def to_frames(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> frame-major ``[B*T, C, H, W]``."""
    _check_video(x, "x")
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def from_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Frame-major ``[B*T, C, H, W]`` -> ``[B, C, T, H, W]``."""
    n, c, h, w = x.shape
    if n % batch:
        raise ValueError(f"x: {n} frames is not a multiple of the batch size {batch}")
    return x.reshape(batch, n // batch, c, h, w).permute(0, 2, 1, 3, 4)


def conditioning_frames(
    cond_lowres: torch.Tensor, scale: int = SR_SCALE, scale_factor: float = SCALE_FACTOR
) -> torch.Tensor:
    """Official ``z_ref``: ``cond_lowres [B, C, T, h, w]`` -> ``[B*T, C, h*scale, w*scale]`` float32, times
    ``scale_factor``. With effnet latents (C = 16) this is ``cond_upsampled_scaled`` of the reference."""
    return to_frames(upsample_spatial(cond_lowres.float(), scale)) * scale_factor


def model_input(noisy: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """DiT input ``cat([noisy [N, 4, H, W], cond [N, C, H, W]], 1)`` -> ``[N, 4 + C, H, W]`` (noise first)."""
    if noisy.shape[0] != cond.shape[0] or noisy.shape[-2:] != cond.shape[-2:]:
        raise ValueError(f"cond: shape {tuple(cond.shape)} does not match the latents {tuple(noisy.shape)}")
    return torch.cat([noisy, cond.to(noisy.dtype)], dim=1)


def encode_resized(
    video: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor], scale: int = SR_SCALE
) -> torch.Tensor:
    """Downsample ``video [B, 3, T, H, W]`` by ``scale`` and encode it: returns ``encode(...)`` latents
    ``[B, C, T, h, w]`` (the low-resolution conditioning). ``encode`` maps ``[B, 3, T, H', W']`` to latents."""
    lat = encode(downsample_spatial(video, scale))
    _check_video(lat, "encode(video) output")
    return lat


def resize_path_conditioning(
    video: torch.Tensor,
    encode: Callable[[torch.Tensor], torch.Tensor],
    scale: int = SR_SCALE,
    scale_factor: float = SCALE_FACTOR,
) -> torch.Tensor:
    """Resize path: bilinear down x``scale`` -> ``encode`` -> bilinear up x``scale`` -> times ``scale_factor``.

    ``video [B, 3, T, H, W]`` -> ``[B*T, C, H', W']`` frame-major (``H' = scale * encoded height``).
    """
    return conditioning_frames(encode_resized(video, encode, scale), scale, scale_factor)
