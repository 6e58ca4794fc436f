"""Cutting the cost of scoring: a subset of frames at reduced resolution, and a checked evaluator call."""

from __future__ import annotations

import math

import kornia
import torch

from .evaluators import Evaluator


def score_frame_indices(num_frames: int, count: int | None) -> torch.Tensor:
    """``count`` evenly spaced frame indices in ``0..num_frames-1``, ascending, the last frame always included
    (it guides the next chunk). None or a count >= ``num_frames`` gives every frame."""
    if count is None or count >= num_frames:
        return torch.arange(num_frames)
    return torch.linspace(num_frames - 1, 0, count).round().long().flip(0).unique()


def shrink_images(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Antialiased downscale of ``[..., C, H, W]`` so that ``max(H, W) <= size``; never upscales."""
    h, w = images.shape[-2:]
    if size is None or max(h, w) <= size:
        return images
    flat = images.reshape(-1, *images.shape[-3:])
    small = kornia.geometry.transform.resize(flat, size, side="long", antialias=True)
    return small.reshape(*images.shape[:-2], *small.shape[-2:])


def prepare_frames(frames: torch.Tensor, score_frames: int | None, score_size: int | None) -> torch.Tensor:
    """Frames ``[B, T, C, H, W]`` -> ``[B, T', C, h, w]`` the evaluator sees (subset, then downscale)."""
    idx = score_frame_indices(frames.shape[1], score_frames).to(frames.device)
    return shrink_images(frames.index_select(1, idx), score_size)


def evaluate(evaluator: Evaluator, frames: torch.Tensor, guide: torch.Tensor) -> list[float]:
    """Run ``evaluator(frames [B, T, C, H, W], guide [1, C, H, W])`` and return its ``B`` scores as floats.

    Raises ValueError naming ``evaluator`` if it does not return one value per candidate.
    """
    scores = evaluator(frames, guide)
    b = frames.shape[0]
    is_tensor = isinstance(scores, torch.Tensor)
    if not is_tensor or scores.numel() != b or (scores.ndim > 1 and scores.shape[0] != b):
        got = tuple(scores.shape) if is_tensor else type(scores).__name__
        raise ValueError(f"evaluator must return one score per candidate, shape [{b}], got {got}")
    return [float(v) for v in scores.detach().reshape(b).float().cpu()]


def best_index(scores: list[float]) -> int:
    """Index of the highest score; the first on ties; NaN never wins (all NaN -> 0)."""
    clean = [-math.inf if math.isnan(s) else s for s in scores]
    return max(range(len(clean)), key=clean.__getitem__)


def top_indices(scores: list[float], count: int) -> list[int]:
    """Indices of the ``count`` highest scores, ascending; earlier indices win ties and NaN ranks last, so
    ``top_indices(scores, 1) == [best_index(scores)]``."""
    clean = [-math.inf if math.isnan(s) else s for s in scores]
    ranked = sorted(range(len(clean)), key=lambda i: (-clean[i], i))
    return sorted(ranked[:count])
