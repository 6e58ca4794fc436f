"""Stable Video Diffusion adapter (``SVD_img2vid_Conditioning``): frames are SVD's batch, so one candidate per
call; no text (the conditioning is the CLIP vision embedding of the guide)."""

from __future__ import annotations

from dataclasses import dataclass

from .comfyui import io, run_node
from .i2v_base import Conditioned, I2VAdapter, I2VAdapterType

SVD_CONDITIONING = "comfy_extras.nodes_video_model.SVD_img2vid_Conditioning"


@dataclass
class SVDI2V(I2VAdapter):
    """Stable Video Diffusion, as ``SVD_img2vid_Conditioning`` does. Frames are SVD's batch, so one candidate per
    call; SVD ignores text conditioning (it is built from the CLIP vision embedding of the guide)."""

    clip_vision: object = None
    width: int = 1024
    height: int = 576
    video_frames: int = 25
    motion_bucket_id: int = 127
    fps: int = 6
    augmentation_level: float = 0.0
    family = "svd"
    max_batch = 1
    uses_text = False
    compression = (4, 8, 1)

    @property
    def length(self) -> int:
        return self.video_frames

    def condition(self, positive, negative, vae, guide):
        out = run_node(
            SVD_CONDITIONING, clip_vision=self.clip_vision, init_image=guide, vae=vae, width=self.width,
            height=self.height, video_frames=self.video_frames, motion_bucket_id=self.motion_bucket_id, fps=self.fps,
            augmentation_level=self.augmentation_level,
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


class CascadeVI2VSVD(io.ComfyNode):
    REQUIRES = (SVD_CONDITIONING,)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVI2VSVD",
            display_name="CascadeV I2V Adapter (SVD)",
            category="CascadeV/chunk sampler",
            description="Conditions Stable Video Diffusion on each chunk's guide image, as "
            "SVD_img2vid_Conditioning does (no text prompt; one candidate per model call). Defaults: the "
            "official SVD-XT template.",
            inputs=[
                io.ClipVision.Input("clip_vision", tooltip="SVD's CLIP vision encoder (from the SVD checkpoint)."),
                io.Int.Input("width", default=1024, min=16, max=8192, step=8, tooltip="Frame width in pixels."),
                io.Int.Input("height", default=576, min=16, max=8192, step=8, tooltip="Frame height in pixels."),
                io.Int.Input(
                    "video_frames", default=25, min=1, max=4096, tooltip="Frames per chunk (SVD-XT 25, SVD 14)."
                ),
                io.Int.Input("motion_bucket_id", default=127, min=1, max=1023, tooltip="SVD motion amount."),
                io.Int.Input("fps", default=6, min=1, max=1024, tooltip="SVD fps conditioning."),
                io.Float.Input(
                    "augmentation_level",
                    default=0.0,
                    min=0.0,
                    max=10.0,
                    step=0.01,
                    tooltip="Noise added to the guide before encoding.",
                ),
            ],
            outputs=[I2VAdapterType.Output(display_name="i2v")],
        )

    @classmethod
    def execute(cls, clip_vision, width, height, video_frames, motion_bucket_id, fps, augmentation_level):
        return io.NodeOutput(
            SVDI2V(clip_vision, width, height, video_frames, motion_bucket_id, fps, augmentation_level)
        )


NODES = [CascadeVI2VSVD]
