"""Image-to-video adapters: condition a ComfyUI video model on a new guide image for every chunk.

Each adapter calls ComfyUI's own conditioning node of its family (``WanImageToVideo``, ``SVD_img2vid_Conditioning``,
``LTXVImgToVideo``), so the chunk sampler conditions exactly as the stock graphs do, and knows how that family lays
out a batch of candidates in its latent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .comfyui import run_node


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
    width: int
    height: int

    def condition(self, positive, negative, vae, guide: torch.Tensor) -> Conditioned:
        """Condition on ``guide`` IMAGE ``[1, H, W, 3]`` (0..1)."""
        raise NotImplementedError

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


@dataclass
class WanI2V(I2VAdapter):
    """Wan 2.1 / 2.2 image-to-video, as ``WanImageToVideo`` does (optional CLIP vision output of the guide)."""

    width: int = 832
    height: int = 480
    length: int = 81
    clip_vision: object | None = None
    family = "wan_i2v"

    def condition(self, positive, negative, vae, guide):
        clip_out = self.clip_vision.encode_image(guide) if self.clip_vision is not None else None
        out = run_node(
            "comfy_extras.nodes_wan.WanImageToVideo", positive=positive, negative=negative, vae=vae,
            width=self.width, height=self.height, length=self.length, batch_size=1, start_image=guide,
            clip_vision_output=clip_out,
        )  # fmt: skip
        return Conditioned(*out)


@dataclass
class LTXVI2V(I2VAdapter):
    """LTX-Video image-to-video, as ``LTXVImgToVideo`` does (first latent frame kept through the noise mask)."""

    width: int = 768
    height: int = 512
    length: int = 97
    strength: float = 1.0
    family = "ltxv"

    def condition(self, positive, negative, vae, guide):
        out = run_node(
            "comfy_extras.nodes_lt.LTXVImgToVideo", positive=positive, negative=negative, image=guide, vae=vae,
            width=self.width, height=self.height, length=self.length, batch_size=1, strength=self.strength,
        )  # fmt: skip
        return Conditioned(*out)


@dataclass
class SVDI2V(I2VAdapter):
    """Stable Video Diffusion, as ``SVD_img2vid_Conditioning`` does. Frames are SVD's batch, so one candidate per
    call; SVD ignores text conditioning (it is built from the CLIP vision embedding of the guide)."""

    clip_vision: object = None
    width: int = 1024
    height: int = 576
    video_frames: int = 14
    motion_bucket_id: int = 127
    fps: int = 6
    augmentation_level: float = 0.0
    family = "svd"
    max_batch = 1
    uses_text = False

    def condition(self, positive, negative, vae, guide):
        out = run_node(
            "comfy_extras.nodes_video_model.SVD_img2vid_Conditioning", clip_vision=self.clip_vision, init_image=guide,
            vae=vae, width=self.width, height=self.height, video_frames=self.video_frames,
            motion_bucket_id=self.motion_bucket_id, fps=self.fps, augmentation_level=self.augmentation_level,
        )  # fmt: skip
        return Conditioned(*out)

    def noise_shape(self, latent):
        return tuple(latent.shape)  # [T, 4, h, w]: the whole latent is one candidate

    def as_candidate(self, latent):
        return latent

    def to_model_batch(self, x):
        if x.shape[0] != 1:
            raise ValueError(f"SVD samples one candidate per call (batch_size 1), got {x.shape[0]}")
        return x[0]

    def from_model_batch(self, x, batch):
        return x[None]
