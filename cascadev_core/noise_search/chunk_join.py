"""Joining chunks into one video: the repeated guide frame dropped, colours held to the first chunk's."""

from __future__ import annotations

import kornia
import torch

from .evaluators import lab_statistics


def chunk_lab_statistics(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel Lab mean and standard deviation over a whole chunk of RGB ``frames [T, 3, H, W]``: two
    ``[3]`` tensors (float32)."""
    return lab_statistics(frames, per_image=False)


def match_color(
    frames: torch.Tensor, ref_mean: torch.Tensor, ref_std: torch.Tensor, strength: float = 1.0
) -> torch.Tensor:
    """Move a chunk's colour statistics toward a reference, in Lab.

    One affine map per channel for the whole chunk (so it adds no flicker inside the chunk): each Lab channel
    is shifted and scaled to the reference mean and standard deviation, then blended with the original by
    ``strength`` (0 = unchanged, 1 = full match) and converted back to RGB in 0..1.

    Args:
        frames: ``[T, 3, H, W]`` RGB in 0..1.
        ref_mean, ref_std: ``[3]`` Lab statistics of the reference (see :func:`chunk_lab_statistics`).
        strength: 0..1.

    Returns:
        ``[T, 3, H, W]`` in 0..1, dtype of ``frames``.
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"colour correction needs RGB frames [T, 3, H, W], got {tuple(frames.shape)}")
    lab = kornia.color.rgb_to_lab(frames.float().clamp(0, 1))
    mean = lab.mean(dim=(0, 2, 3))
    std = lab.std(dim=(0, 2, 3), correction=0)
    scale = ref_std.to(lab) / std.clamp_min(1e-6)
    matched = (lab - mean.view(1, 3, 1, 1)) * scale.view(1, 3, 1, 1) + ref_mean.to(lab).view(1, 3, 1, 1)
    blended = torch.lerp(lab, matched, strength)
    return kornia.color.lab_to_rgb(blended, clip=True).clamp(0, 1).to(frames.dtype)


class ChunkJoiner:
    """Collects chunks into one preallocated ``[N, C, H, W]`` video, so a long video is never held twice.

    Args:
        num_chunks: chunks that will be added.
        keep_guide_frame: keep frame 0 of chunks 2..n (by default dropped: it repeats the guide, i.e. the
            previous chunk's last frame).
        color_correction: strength of :func:`match_color` toward chunk 1's statistics, applied to chunks
            2..n (0 = off).
        device: where the joined video lives (e.g. the CPU while the model works on a GPU).
    """

    def __init__(
        self, num_chunks: int, keep_guide_frame: bool, color_correction: float, device: torch.device | str
    ) -> None:
        self.num_chunks = num_chunks
        self.keep_guide_frame = keep_guide_frame
        self.color_correction = color_correction
        self.device = device
        self._video: torch.Tensor | None = None
        self._filled = 0
        self._added = 0
        self._ref: tuple[torch.Tensor, torch.Tensor] | None = None
        self._chunk_shape: torch.Size | None = None

    def add(self, frames: torch.Tensor) -> torch.Tensor:
        """Append a chunk ``[T, C, H, W]``; returns the guide of the next chunk, ``[1, C, H, W]``: its last
        frame, colour-corrected when correction is on."""
        first = self._added == 0
        if first:
            if frames.shape[0] < 2 and not self.keep_guide_frame and self.num_chunks > 1:
                raise ValueError("chunks of one frame are nothing but their guide: set keep_guide_frame=True")
            self._chunk_shape = frames.shape
            per_chunk = frames.shape[0] - (0 if self.keep_guide_frame else 1)
            total = frames.shape[0] + (self.num_chunks - 1) * per_chunk
            self._video = torch.empty((total, *frames.shape[1:]), dtype=frames.dtype, device=self.device)
        elif frames.shape != self._chunk_shape:
            raise RuntimeError(
                f"chunk {self._added} has frames {tuple(frames.shape)} but chunk 0 had "
                f"{tuple(self._chunk_shape)}: sample() must return the same frames shape for every chunk"
            )
        if self.color_correction > 0:
            if frames.shape[1] != 3:
                raise ValueError(f"color_correction needs RGB frames (C=3), got C={frames.shape[1]}")
            if first:
                self._ref = chunk_lab_statistics(frames)
            else:
                frames = match_color(frames, *self._ref, strength=self.color_correction)
        kept = frames if first or self.keep_guide_frame else frames[1:]
        self._video[self._filled : self._filled + kept.shape[0]] = kept
        self._filled += kept.shape[0]
        self._added += 1
        return frames[-1:]

    def video(self) -> torch.Tensor:
        """The joined video ``[N, C, H, W]`` (only the part filled so far if chunks are missing)."""
        if self._video is None:
            raise RuntimeError("no chunk was added")
        return self._video[: self._filled]
