"""Evaluators: score candidate chunks against their guide image, higher is better.

An evaluator is any callable ``score(frames, guide) -> scores`` with

* ``frames``: ``[B, T, C, H, W]``, values in 0..1, B candidates of T frames each;
* ``guide``: ``[1, C, H, W]``, values in 0..1, the image the chunk was generated from;
* ``scores``: ``[B]``, one value per candidate, higher is better.

The classes here score every frame (``[B, T]``) and reduce over frames with ``"min"`` (the worst frame
decides, as in the paper) or ``"mean"``. Their ranges, so that :class:`WeightedSum` weights mean something:

* :class:`EmbeddingSimilarity`: cosine similarity, -1..1 (the paper's evaluator, with a model passed in);
* :class:`SSIMToGuide`: SSIM, -1..1;
* :class:`ColorDrift`: minus the Lab mean+std distance to the guide / 100, about -1.5..0;
* :class:`Flicker`: minus the mean absolute frame-to-frame difference, -1..0.

Without a CLIP model, use :class:`~.faithful_motion.FaithfulMotion` (see :func:`~.defaults.default_evaluator`):
the terms here, SSIM and flicker above all, rank a frozen copy of the guide best.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import kornia
import torch
import torch.nn.functional as F

Evaluator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EmbedFn = Callable[[torch.Tensor], torch.Tensor]

REDUCTIONS = ("min", "mean")


class FrameEvaluator:
    """Base of the evaluators here: :meth:`per_frame` scores ``[B, T]``, reduced over frames."""

    name = "frame_evaluator"

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def per_frame(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Score of every frame, ``[B, T]``, from frames ``[B, T, C, H, W]`` and guide ``[1, C, H, W]``."""
        raise NotImplementedError

    def __call__(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` (float32) of frames ``[B, T, C, H, W]`` against guide ``[1, C, H, W]``."""
        per_frame = self.per_frame(frames, guide).float()
        if per_frame.shape[1] == 0:
            return per_frame.new_zeros(per_frame.shape[0])
        return per_frame.amin(dim=1) if self.reduction == "min" else per_frame.mean(dim=1)


class EmbeddingSimilarity(FrameEvaluator):
    """The paper's evaluator: cosine similarity between the embedding of each frame and of the guide.

    Args:
        embed: ``embed(images [N, C, H, W] in 0..1) -> [N, D]``, e.g. a CLIP vision encoder with its own
            preprocessing. It is called once per evaluation, on the guide and all frames together.
        reduction: ``"min"`` over frames (the paper) or ``"mean"``.
    """

    name = "embedding_similarity"

    def __init__(self, embed: EmbedFn, reduction: str = "min") -> None:
        super().__init__(reduction)
        self.embed = embed

    def per_frame(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        images = torch.cat([guide.to(frames.dtype), frames.flatten(0, 1)])
        emb = self.embed(images)
        if not isinstance(emb, torch.Tensor) or emb.ndim != 2 or emb.shape[0] != images.shape[0]:
            got = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
            raise ValueError(f"embed must map [N, C, H, W] to [N, D] with N={images.shape[0]}, got {got}")
        emb = emb.float()
        return F.cosine_similarity(emb[1:], emb[:1], dim=-1).view(b, t)


class SSIMToGuide(FrameEvaluator):
    """Structural similarity of each frame to the guide (``kornia.metrics.ssim``), -1..1.

    Args:
        window_size: odd Gaussian window; shrunk to the largest odd size that fits frames smaller than it.
        reduction: ``"mean"`` (default) or ``"min"`` over frames.
    """

    name = "ssim"

    def __init__(self, window_size: int = 11, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if window_size < 3 or window_size % 2 == 0:
            raise ValueError(f"window_size must be an odd int >= 3, got {window_size}")
        self.window_size = window_size

    def per_frame(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = frames.shape
        fit = min(h, w) if min(h, w) % 2 else min(h, w) - 1
        window = max(3, min(self.window_size, fit))
        flat = frames.reshape(b * t, c, h, w).float()
        ssim_map = kornia.metrics.ssim(flat, guide.float().expand_as(flat), window, max_val=1.0)
        return ssim_map.mean(dim=(1, 2, 3)).view(b, t)


class ColorDrift(FrameEvaluator):
    """Minus the drift of each frame's colour statistics from the guide's.

    Drift is the L1 distance between the per-channel Lab means plus that between the per-channel Lab standard
    deviations (``kornia.color.rgb_to_lab``), divided by 100 (the L range). Needs RGB frames (C = 3).
    """

    name = "color_drift"

    def per_frame(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = frames.shape
        if c != 3:
            raise ValueError(f"ColorDrift needs RGB frames (C=3), got C={c}")
        mean_f, std_f = lab_statistics(frames.reshape(b * t, c, h, w))
        mean_g, std_g = lab_statistics(guide)
        drift = ((mean_f - mean_g).abs() + (std_f - std_g).abs()).sum(dim=-1) / 100.0
        return -drift.view(b, t)


class Flicker(FrameEvaluator):
    """Minus the mean absolute difference between consecutive frames (VBench's temporal flickering).

    Args:
        include_guide: count the step from the guide to the first frame, i.e. the seam between chunks.
        reduction: ``"mean"`` (default) or ``"min"`` (the worst transition) over transitions.
    """

    name = "flicker"

    def __init__(self, include_guide: bool = True, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.include_guide = include_guide

    def per_frame(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        seq = frames.float()
        if self.include_guide:
            seq = torch.cat([guide.float().expand(seq.shape[0], 1, *guide.shape[1:]), seq], dim=1)
        return -(seq[:, 1:] - seq[:, :-1]).abs().mean(dim=(2, 3, 4))


class WeightedSum:
    """``sum(weight * evaluator(frames, guide))`` over ``terms``, each a pair ``(evaluator, weight)``."""

    def __init__(self, terms: Sequence[tuple[Evaluator, float]]) -> None:
        if not terms:
            raise ValueError("terms must hold at least one (evaluator, weight) pair")
        self.terms = list(terms)
        self.name = " + ".join(f"{w:g}*{evaluator_name(e)}" for e, w in self.terms)

    def __call__(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` of frames ``[B, T, C, H, W]`` against guide ``[1, C, H, W]``."""
        return sum(w * e(frames, guide).float() for e, w in self.terms)


def ssim_blend_evaluator(ssim: float = 1.0, color: float = 1.0, flicker: float = 1.0) -> WeightedSum:
    """The earlier model-free default: weighted SSIM to the guide, colour drift and flicker (zero weights omitted).

    It ranks a frozen copy of the guide above any moving video, so a search scored by it prefers the least
    motion; :func:`~.defaults.weight_free_evaluator` (:class:`~.faithful_motion.FaithfulMotion`) does not."""
    terms = [(SSIMToGuide(), ssim), (ColorDrift(), color), (Flicker(), flicker)]
    return WeightedSum([(e, w) for e, w in terms if w != 0])


def evaluator_name(evaluator: Evaluator) -> str:
    """A short name for reports: the ``name`` attribute, else the function or class name."""
    return getattr(evaluator, "name", None) or getattr(evaluator, "__name__", type(evaluator).__name__)


def lab_statistics(images: torch.Tensor, per_image: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel Lab mean and std of RGB ``images [N, 3, H, W]``: two ``[N, 3]`` tensors, or with
    ``per_image=False`` two ``[3]`` tensors over all N images together (float32)."""
    lab = kornia.color.rgb_to_lab(images.float().clamp(0, 1))
    dims = (2, 3) if per_image else (0, 2, 3)
    return lab.mean(dim=dims), lab.std(dim=dims, correction=0)
