"""A weight-free evaluator that keeps motion: faithful to the guide's content and colours, coherent in time, and
moving.

SSIM to the guide ranks a frozen copy of the guide best, so a search scored by it prefers the least motion.
:class:`FaithfulMotion` instead measures every property in a way motion does not disturb, on a small copy of the
frames (long side ``size`` pixels, ``size // 8`` pixel patches):

* **faithfulness**: the bidirectional patch distance to the guide (Simakov et al. 2008): every patch of a frame
  should be found somewhere in the guide (no new content) and every patch of the guide somewhere in the frame
  (none lost). Patches are matched anywhere, so moved content is still faithful; colours or structures that
  leave the guide are not;
* **colour drift**: the per-channel Lab mean and standard deviation of each frame against the guide's (as
  :class:`~.evaluators.ColorDrift`), which motion does not change;
* **incoherence**: the motion-compensated difference between consecutive frames (the guide, then the frames):
  each patch is matched in the previous frame within ``search_radius`` of its place. Smooth motion leaves
  nothing, flicker and noise do;
* **motion**: how far the content travels over the chunk, as a fraction of the long side: the larger of the
  path summed over frame-to-frame matches (fast motion) and the farthest any frame got from the guide (slow
  motion that no single frame step resolves), each a mean over patches of the matched displacement weighted by
  how much of the difference the match explains (noise and flicker move nothing). Below ``motion_target`` a
  penalty grows linearly up to ``still_penalty`` for a video that does not move at all.

All terms but the last are mean absolute differences of values in 0..1 (Lab / 100 for colour), so they add
without weights: ``score = -(faithfulness + colour_drift + incoherence + still_penalty * stillness)``, with
``stillness = max(0, 1 - motion / motion_target)``; 0 is best, a frozen copy of the guide scores
``-still_penalty``.
"""

from __future__ import annotations

import math

import kornia
import torch
import torch.nn.functional as F

from .evaluators import lab_statistics


class FaithfulMotion:
    """Faithful to the guide, coherent, and moving; see the module docstring. An evaluator: ``score(frames
    [B, T, C, H, W], guide [1, C, H, W]) -> [B]`` (values in 0..1; higher is better, 0 at best).

    Args:
        size: long side, in pixels, of the copy the measures run on (patches of ``size // 8`` pixels).
        motion_target: travel over a chunk, as a fraction of the long side, below which a video counts as
            partly still.
        still_penalty: the penalty of a video that does not move at all (in the units of the other terms: a
            still video scores like one whose pixels are off by this much on average).
        search_radius: how far (fraction of the long side) a patch is looked for in the previous frame, and in
            the guide for the motion from the guide (which only needs to reach ``motion_target``).
    """

    name = "faithful_motion"

    def __init__(
        self, size: int = 32, motion_target: float = 0.1, still_penalty: float = 0.1, search_radius: float = 0.15
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 16:
            raise ValueError(f"size must be an int >= 16, got {size!r}")
        for name, value in (("motion_target", motion_target), ("search_radius", search_radius)):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if search_radius < motion_target:
            raise ValueError(f"search_radius ({search_radius}) must be at least motion_target ({motion_target})")
        if still_penalty < 0:
            raise ValueError(f"still_penalty must be >= 0, got {still_penalty}")
        self.size, self.motion_target = size, motion_target
        self.still_penalty, self.search_radius = still_penalty, search_radius

    def __call__(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` (float32) of frames ``[B, T, C, H, W]`` against guide ``[1, C, H, W]``."""
        t = self.terms(frames, guide)
        penalty = self.still_penalty * t["stillness"]
        return -(t["faithfulness"] + t["colour_drift"] + t["incoherence"] + penalty)

    def terms(self, frames: torch.Tensor, guide: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every term, each ``[B]`` float32: ``faithfulness``, ``colour_drift``, ``incoherence`` (errors, 0 at
        best), ``motion`` (travel, fraction of the long side) and ``stillness`` (0..1)."""
        if frames.ndim != 5 or guide.ndim != 4 or frames.shape[2:] != guide.shape[1:]:
            raise ValueError(
                f"frames must be [B, T, C, H, W] and guide [1, C, H, W] of the same C, H, W, got "
                f"{tuple(frames.shape)} and {tuple(guide.shape)}"
            )
        b, t, c = frames.shape[:3]
        small = self._resize(frames.reshape(b * t, *frames.shape[2:]).float())
        g = self._resize(guide.float())
        patch = self.size // 8
        faithful = 0.5 * (
            _nearest_patch_distance(small, g.expand_as(small), patch)
            + _nearest_patch_distance(g.expand_as(small), small, patch)
        )
        seq = torch.cat([g.expand(b, 1, *g.shape[1:]), small.view(b, t, *small.shape[1:])], dim=1)
        radius = max(1, math.ceil(self.search_radius * self.size))
        residual, step = _block_match(seq[:, 1:].flatten(0, 1), seq[:, :-1].flatten(0, 1), patch, radius, self.size)
        residual, step = residual.view(b, t), step.view(b, t)
        _, away = _block_match(small, g.expand_as(small), patch, radius, self.size)
        # frame to frame (the seam from the guide is not motion), or from the guide
        motion = torch.maximum(step[:, 1:].sum(dim=1), away.view(b, t).amax(dim=1))
        if c == 3:
            mean_f, std_f = lab_statistics(frames.reshape(b * t, *frames.shape[2:]))
            mean_g, std_g = lab_statistics(guide)
            colour = (((mean_f - mean_g).abs() + (std_f - std_g).abs()).sum(dim=-1) / 100.0).view(b, t).mean(dim=1)
        else:
            colour = torch.zeros(b)
        return {
            "faithfulness": faithful.view(b, t).mean(dim=1),
            "colour_drift": colour.float(),
            "incoherence": residual.mean(dim=1),
            "motion": motion,
            "stillness": (1 - motion / self.motion_target).clamp(min=0),
        }

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W]`` -> long side ``size`` (antialiased when shrinking), dimensions multiples of the patch."""
        h, w = images.shape[-2:]
        scale = self.size / max(h, w)
        patch = self.size // 8
        new = [max(patch, round(d * scale / patch) * patch) for d in (h, w)]
        return kornia.geometry.transform.resize(images, tuple(new), antialias=scale < 1)


def _nearest_patch_distance(source: torch.Tensor, target: torch.Tensor, patch: int) -> torch.Tensor:
    """For each image pair, the mean over ``source``'s non-overlapping patches of the mean absolute difference to
    the nearest patch of ``target`` at any position: ``[N]`` from ``[N, C, h, w]`` twice."""
    blocks = F.unfold(source, patch, stride=patch).transpose(1, 2)  # [N, nb, C*p*p]
    dense = F.unfold(target, patch, stride=1).transpose(1, 2)  # [N, np, C*p*p]
    dist = torch.cdist(blocks, dense, p=1) / blocks.shape[-1]  # [N, nb, np]
    return dist.amin(dim=2).mean(dim=1)


def _block_match(
    current: torch.Tensor, previous: torch.Tensor, patch: int, radius: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Match every ``patch`` block of ``current`` in ``previous`` within ``radius`` pixels (both ``[N, C, h, w]``).

    Returns ``(residual, travel)``, each ``[N]``: the mean over blocks of the mean absolute difference to the
    matched block, and the mean over blocks of the displacement of the match as a fraction of ``size``, each
    weighted by the share of the unmoved difference the match explains, ``(d_0 - d_match) / d_0``: a moved
    block counts fully, a block of noise or flicker (no shift explains it) or a flat one (nothing to explain)
    hardly at all. Among near-equal matches the nearer wins (a cost of 0.01 per frame width of displacement).
    """
    padded = F.pad(previous, (radius,) * 4, mode="replicate")
    h, w = current.shape[-2:]
    costs, residuals, lengths = [], [], []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            moved = padded[..., radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            diff = F.avg_pool2d((current - moved).abs().mean(dim=1, keepdim=True), patch)[:, 0]  # [N, nbh, nbw]
            length = math.hypot(dy, dx) / size
            residuals.append(diff)
            costs.append(diff + 0.01 * length)
            lengths.append(length)
    best = torch.stack(costs).argmin(dim=0, keepdim=True)  # [1, N, nbh, nbw]
    stacked = torch.stack(residuals)
    residual = stacked.gather(0, best)[0]
    unmoved = stacked[len(residuals) // 2]  # the shift (0, 0) is the middle one
    explained = ((unmoved - residual) / unmoved.clamp_min(1e-6)).clamp(0, 1)
    travel = torch.tensor(lengths)[best[0]] * explained
    return residual.flatten(1).mean(dim=1), travel.flatten(1).mean(dim=1)
