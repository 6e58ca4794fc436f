"""What every image-to-video adapter provides the chunk sampler: conditioning on a new guide image for each chunk,
through ComfyUI's own conditioning node of that family, and how the family lays candidates out in its latent.

One file per family (``i2v_wan.py``, ``i2v_hunyuan.py``, ``i2v_ltxv.py``, ``i2v_svd.py``) holds its adapter and
its node; each node's defaults are those of the family's official ComfyUI template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .comfyui import io

I2VAdapterType = io.Custom("CASCADEV_I2V")


@dataclass
class Conditioned:
    """One chunk's conditioning: ComfyUI CONDITIONING lists and the empty latent dict (with optional noise_mask)."""

    positive: list
    negative: list
    latent: dict


class I2VAdapter:
    """Base adapter: video latents ``[B, C, T, h, w]`` where candidates are the batch dimension."""

    family = "video"
    #: candidates per sampler call the family supports (None: any)
    max_batch: int | None = None
    #: whether the model reads text conditioning (without a prompt the sampler then passes zeros)
    uses_text = True
    #: diffusion-model layers whose input width is the text width (for conditioning of zeros without a prompt)
    text_layers: tuple[str, ...] = ("text_embedding",)
    #: (latent channels, spatial compression, temporal compression) of the family's latent
    compression: tuple[int, int, int] = (16, 8, 4)
    width: int
    height: int
    length: int

    def condition(self, positive, negative, vae, guide: torch.Tensor) -> Conditioned:
        """Condition on ``guide`` IMAGE ``[1, H, W, 3]`` (0..1)."""
        raise NotImplementedError

    def latent_frames(self) -> int:
        """Latent frames of one chunk (for estimates before any work)."""
        return (self.length - 1) // self.compression[2] + 1

    def latent_values(self) -> int:
        """Values of one candidate's latent (for estimates before any work)."""
        channels, spatial, _ = self.compression
        return channels * self.latent_frames() * math.ceil(self.height / spatial) * math.ceil(self.width / spatial)

    def zero_text(self, width: int) -> list:
        """CONDITIONING of zeros of text width ``width`` (what ConditioningZeroOut gives), for no prompt."""
        return [[torch.zeros(1, 1, width), {}]]

    def noise_shape(self, latent: torch.Tensor) -> tuple[int, ...]:
        """Shape of one candidate's noise (no batch dimension) for the family's empty latent."""
        return tuple(latent.shape[1:])

    def as_candidate(self, latent: torch.Tensor) -> torch.Tensor:
        """The family's empty latent -> one candidate ``[*noise_shape]``."""
        return latent[0]

    def to_model_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Candidates ``[B, *noise_shape]`` -> the latent batch the model samples."""
        return x

    def from_model_batch(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        """The sampled latent batch -> candidates ``[B, *noise_shape]``."""
        return x

    def decode(self, vae, x: torch.Tensor) -> torch.Tensor:
        """One candidate's latent ``[1, *noise_shape]`` -> frames ``[1, T, 3, H, W]`` in 0..1."""
        images = vae.decode(self.to_model_batch(x))
        if images.ndim == 5:  # video VAEs: [B, T, H, W, 3]
            images = images[0]
        return images[..., :3].movedim(-1, 1)[None].clamp(0, 1)


def size_inputs(width: int, height: int, length: int, step: int, length_step: int, min_size: int, min_length: int):
    """The width / height / length widgets of an adapter node (defaults from the family's template)."""
    return [
        io.Int.Input("width", default=width, min=min_size, max=8192, step=step, tooltip="Frame width in pixels."),
        io.Int.Input("height", default=height, min=min_size, max=8192, step=step, tooltip="Frame height in pixels."),
        io.Int.Input("length", default=length, min=min_length, max=4096, step=length_step, tooltip="Frames per chunk."),
    ]


def check_length(length: int, step: int, family: str) -> bool | str:
    """For ``validate_inputs``: the family's VAE takes ``step * k + 1`` frames."""
    if (length - 1) % step:
        below, above = (length - 1) // step * step + 1, ((length - 1) // step + 1) * step + 1
        return f"{family} makes chunks of {step}*k + 1 frames; use {below} or {above}, not {length}"
    return True
