"""HunyuanVideo 1.5 image-to-video adapter (``HunyuanVideo15ImageToVideo``: 32-channel latent, 16x compression,
the guide as a concat image and mask, optional SigLIP vision output)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .comfyui import io, run_node
from .i2v_base import Conditioned, I2VAdapter, I2VAdapterType, check_length, size_inputs

HUNYUAN15_I2V = "comfy_extras.nodes_hunyuan.HunyuanVideo15ImageToVideo"


@dataclass
class HunyuanVideo15I2V(I2VAdapter):
    """HunyuanVideo 1.5 I2V, as ``HunyuanVideo15ImageToVideo`` does (optional CLIP vision output of the guide)."""

    width: int = 1280
    height: int = 720
    length: int = 121
    clip_vision: object | None = None
    family = "hunyuan_video_15"
    compression = (32, 16, 4)
    text_layers = ("txt_in.input_embedder",)

    def condition(self, positive, negative, vae, guide):
        clip_out = self.clip_vision.encode_image(guide) if self.clip_vision is not None else None
        out = run_node(
            HUNYUAN15_I2V, positive=positive, negative=negative, vae=vae, width=self.width, height=self.height,
            length=self.length, batch_size=1, start_image=guide, clip_vision_output=clip_out,
        )  # fmt: skip
        return Conditioned(*out)

    def zero_text(self, width: int) -> list:
        return [[torch.zeros(1, 1, width), {"pooled_output": None}]]  # its text encoder always gives one

    def decode(self, vae, x: torch.Tensor) -> torch.Tensor:
        """Frames of one candidate, ``length`` of them with the guide first: ComfyUI's HunyuanVideo 1.5 VAE decodes
        ``T`` latent frames into ``4 T`` frames, the first latent frame (the guide, encoded as 4 copies) into 4
        frames; all but the last of those are dropped (what its tiled decode, ``4 T - 3`` frames, gives), so a
        chunk join does not repeat the guide."""
        frames = super().decode(vae, x)
        extra = frames.shape[1] - ((x.shape[2] - 1) * self.compression[2] + 1)
        return frames[:, extra:] if extra > 0 else frames


class CascadeVI2VHunyuanVideo15(io.ComfyNode):
    REQUIRES = (HUNYUAN15_I2V,)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVI2VHunyuanVideo15",
            display_name="CascadeV I2V Adapter (HunyuanVideo 1.5)",
            category="CascadeV/chunk sampler",
            description="Conditions HunyuanVideo 1.5 I2V on each chunk's guide image, as "
            "HunyuanVideo15ImageToVideo does. Defaults: the official HunyuanVideo 1.5 720p I2V template.",
            inputs=[
                *size_inputs(1280, 720, 121, 16, 4, min_size=16, min_length=1),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="The SigLIP vision model of the template (encodes each guide).",
                ),
            ],
            outputs=[I2VAdapterType.Output(display_name="i2v")],
        )

    @classmethod
    def validate_inputs(cls, length) -> bool | str:
        return check_length(length, 4, "HunyuanVideo 1.5")

    @classmethod
    def execute(cls, width, height, length, clip_vision=None) -> io.NodeOutput:
        return io.NodeOutput(HunyuanVideo15I2V(width=width, height=height, length=length, clip_vision=clip_vision))


NODES = [CascadeVI2VHunyuanVideo15]
