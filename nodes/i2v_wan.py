"""Wan image-to-video adapters: Wan 2.1 I2V and Wan 2.2 14B I2V (``WanImageToVideo``), Wan 2.2 TI2V 5B
(``Wan22ImageToVideoLatent``: 48-channel latent, 16x compression, the guide held by the noise mask)."""

from __future__ import annotations

from dataclasses import dataclass

from .comfyui import io, run_node
from .i2v_base import Conditioned, I2VAdapter, I2VAdapterType, check_length, size_inputs

WAN_I2V = "comfy_extras.nodes_wan.WanImageToVideo"
WAN22_LATENT = "comfy_extras.nodes_wan.Wan22ImageToVideoLatent"


@dataclass
class WanI2V(I2VAdapter):
    """Wan 2.1 I2V and Wan 2.2 14B I2V, as ``WanImageToVideo`` does (optional CLIP vision output of the guide;
    Wan 2.2's experts take none). The guide rides in the conditioning as a concat image and mask."""

    width: int = 640
    height: int = 640
    length: int = 81
    clip_vision: object | None = None
    family = "wan_i2v"

    def condition(self, positive, negative, vae, guide):
        clip_out = self.clip_vision.encode_image(guide) if self.clip_vision is not None else None
        out = run_node(
            WAN_I2V, positive=positive, negative=negative, vae=vae, width=self.width, height=self.height,
            length=self.length, batch_size=1, start_image=guide, clip_vision_output=clip_out,
        )  # fmt: skip
        return Conditioned(*out)


@dataclass
class Wan22TI2V(I2VAdapter):
    """Wan 2.2 TI2V 5B, as ``Wan22ImageToVideoLatent`` does: the guide is encoded into the first latent frame of a
    48-channel, 16x-compressed latent and kept by its noise mask; the text conditioning is untouched."""

    width: int = 1280
    height: int = 704
    length: int = 121
    family = "wan22_ti2v"
    compression = (48, 16, 4)

    def condition(self, positive, negative, vae, guide):
        (latent,) = run_node(
            WAN22_LATENT, vae=vae, width=self.width, height=self.height, length=self.length, batch_size=1,
            start_image=guide,
        )  # fmt: skip
        return Conditioned(positive, negative, latent)


class CascadeVI2VWan(io.ComfyNode):
    REQUIRES = (WAN_I2V,)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVI2VWan",
            display_name="CascadeV I2V Adapter (Wan 2.1 / 2.2 14B)",
            category="CascadeV/chunk sampler",
            description="Conditions a Wan 2.1 I2V or Wan 2.2 14B I2V model on each chunk's guide image, as "
            "WanImageToVideo does. Defaults: the Wan 2.2 14B I2V template (Wan 2.1's uses 512x512, 33 frames). "
            "For Wan 2.2 14B connect the low-noise expert to the chunk sampler's model_low_noise. Wan 2.2 TI2V "
            "5B has its own adapter.",
            inputs=[
                *size_inputs(640, 640, 81, 16, 4, min_size=16, min_length=1),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="CLIP vision model for Wan 2.1 I2V (encodes each guide image); Wan 2.2 takes none.",
                ),
            ],
            outputs=[I2VAdapterType.Output(display_name="i2v")],
        )

    @classmethod
    def validate_inputs(cls, length) -> bool | str:
        return check_length(length, 4, "Wan")

    @classmethod
    def execute(cls, width, height, length, clip_vision=None) -> io.NodeOutput:
        return io.NodeOutput(WanI2V(width=width, height=height, length=length, clip_vision=clip_vision))


class CascadeVI2VWan22(io.ComfyNode):
    REQUIRES = (WAN22_LATENT,)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVI2VWan22",
            display_name="CascadeV I2V Adapter (Wan 2.2 TI2V 5B)",
            category="CascadeV/chunk sampler",
            description="Conditions Wan 2.2 TI2V 5B on each chunk's guide image, as Wan22ImageToVideoLatent does "
            "(48-channel latent, the guide kept by the noise mask). Defaults: the official Wan 2.2 5B template.",
            inputs=[*size_inputs(1280, 704, 121, 32, 4, min_size=32, min_length=1)],
            outputs=[I2VAdapterType.Output(display_name="i2v")],
        )

    @classmethod
    def validate_inputs(cls, length) -> bool | str:
        return check_length(length, 4, "Wan 2.2")

    @classmethod
    def execute(cls, width, height, length) -> io.NodeOutput:
        return io.NodeOutput(Wan22TI2V(width=width, height=height, length=length))


NODES = [CascadeVI2VWan, CascadeVI2VWan22]
