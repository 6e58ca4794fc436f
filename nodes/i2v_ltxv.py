"""LTX-Video image-to-video adapter (``LTXVImgToVideo``: 128-channel latent, 32x spatial and 8x temporal
compression, the guide in the first latent frame held by the noise mask)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .comfyui import io, run_node
from .i2v_base import Conditioned, I2VAdapter, I2VAdapterType, check_length, size_inputs

LTXV_I2V = "comfy_extras.nodes_lt.LTXVImgToVideo"


@dataclass
class LTXVI2V(I2VAdapter):
    """LTX-Video image-to-video, as ``LTXVImgToVideo`` does (a V1 node in ComfyUI 0.3.52, V3 later)."""

    width: int = 768
    height: int = 512
    length: int = 97
    strength: float = 1.0
    family = "ltxv"
    compression = (128, 32, 8)
    text_layers = ("caption_projection",)

    def condition(self, positive, negative, vae, guide):
        out = run_node(
            LTXV_I2V, positive=positive, negative=negative, image=guide, vae=vae, width=self.width,
            height=self.height, length=self.length, batch_size=1, strength=self.strength,
        )  # fmt: skip
        return Conditioned(*out)

    def zero_text(self, width: int) -> list:
        return [[torch.zeros(1, 1, width), {"attention_mask": torch.ones(1, 1, dtype=torch.long)}]]


class CascadeVI2VLTXV(io.ComfyNode):
    REQUIRES = (LTXV_I2V,)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVI2VLTXV",
            display_name="CascadeV I2V Adapter (LTXV)",
            category="CascadeV/chunk sampler",
            description="Conditions LTX-Video on each chunk's guide image, as LTXVImgToVideo does. Sizes: the "
            "official LTXV I2V template. For its LTXVScheduler connect the scheduler's SIGMAS (and a SAMPLER) to "
            "the chunk sampler.",
            inputs=[
                *size_inputs(768, 512, 97, 32, 8, min_size=64, min_length=9),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="How strongly the first frame is held to the guide: 1 continues each chunk from the "
                    "previous chunk's last frame (the template's 0.15 is a legacy image_noise_scale value).",
                ),
            ],
            outputs=[I2VAdapterType.Output(display_name="i2v")],
        )

    @classmethod
    def validate_inputs(cls, length) -> bool | str:
        return check_length(length, 8, "LTXV")

    @classmethod
    def execute(cls, width, height, length, strength) -> io.NodeOutput:
        return io.NodeOutput(LTXVI2V(width=width, height=height, length=length, strength=strength))


NODES = [CascadeVI2VLTXV]
