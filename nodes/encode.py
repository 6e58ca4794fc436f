"""CascadeV Encode Frames: any frames -> the effnet conditioning LATENT the refine denoises toward.

The conditioning travels as ComfyUI's core LATENT so Save Latent / Load Latent store it. Its ``samples`` are the
effnet latents ``[B, 16, T, H/32, W/32]`` plus one marker channel (a constant), ``[B, 17, T, h, w]``: the marker
survives a Save/Load round trip and lets Refine refuse any other LATENT (a base model's latents have the same
16-channel video shape) before work. The dict also carries the frame rate and sizes for later nodes.
"""

from __future__ import annotations

import torch

from ..cascadev_core.effnet import encode_video
from ..cascadev_core.footprint import check_fits, effnet_call, frames_output, refine_state
from ..cascadev_core.sizing import RESIZE_MODES, cascade_size, tile_pixels
from . import bridge, models
from .bridge import comfy_interrupts, comfy_progress
from .comfyui import io
from .models import memory_totals
from .types import CascadeVEffnetType, CascadeVModelType
from .validation import Choice

MARKER = -4096.0  # value of the marker channel (exact in fp16/bf16/fp32)
META_KEY = "cascadev"
RELEASED_TILE = 1024  # pixels of one tile of the released model (used when no model is connected)
NODE = "CascadeV Encode Frames"


def conditioning_latent(effnet_latents: torch.Tensor, meta: dict) -> dict:
    """``[B, 16, T, h, w]`` effnet latents -> the conditioning LATENT (marker channel appended)."""
    b, _, t, h, w = effnet_latents.shape
    marker = torch.full((b, 1, t, h, w), MARKER, dtype=effnet_latents.dtype)
    return {"samples": torch.cat([effnet_latents, marker], dim=1), META_KEY: meta}


def effnet_conditioning(conditioning: dict, config, videos: int | None = None, name: str = "conditioning"):
    """The effnet latents ``[B, 16, T, h, w]`` of a conditioning LATENT; ValueError naming ``name`` for any LATENT
    that did not come from CascadeV Encode Frames (checked on the tensor itself, so saved and loaded conditioning
    is accepted)."""
    samples = conditioning.get("samples") if isinstance(conditioning, dict) else None
    channels = config.in_channels - config.latent_channels
    shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else None
    if shape is None or len(shape) != 5 or shape[1] != channels + 1 or not bool((samples[:, -1] == MARKER).all()):
        raise ValueError(
            f"{name}: this LATENT {list(shape) if shape else ''} did not come from '{NODE}' (a base model's latent "
            f"is not effnet conditioning). Decode the base model's latent with its own VAE Decode and connect the "
            f"frames to '{NODE}', whose output goes here."
        )
    if videos is not None and shape[0] != videos:
        raise ValueError(f"{name}: expected {videos} video(s), got {shape[0]}")
    return samples[:, :-1]


def source_frames(images: torch.Tensor | None, video) -> tuple[torch.Tensor, float | None]:
    """IMAGE ``[T, H, W, C]`` in 0..1 and the frame rate (None for IMAGE) from either input."""
    if images is not None and video is not None:
        raise ValueError("images / video: connect one of them, not both")
    if video is not None:
        components = video.get_components()
        return components.images, float(components.frame_rate)
    if images is None:
        raise ValueError("images: connect IMAGE frames (or a VIDEO to 'video'): the frames to condition on")
    return images, None


class CascadeVEncode(io.ComfyNode):
    REQUIRES = bridge.REQUIRES + models.REQUIRES + ("comfy.model_management.get_total_memory",)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVEncode",
            display_name=NODE,
            category="CascadeV/cascade",
            description="Encodes frames of any size with the effnet semantic encoder into the conditioning CascadeV "
            "refines. The refined video has the size chosen here: by default the frames are scaled up (never down) "
            "so the short side covers one model tile (1024 pixels for the released model) with both sides "
            "multiples of 32. A base model's LATENT goes through its own VAE Decode first.",
            inputs=[
                CascadeVEffnetType.Input("effnet", tooltip="From 'Load CascadeV Effnet Encoder'."),
                io.Image.Input("images", optional=True, tooltip="Frames [T, H, W, 3], any size."),
                io.Video.Input("video", optional=True, tooltip="A VIDEO instead of IMAGE frames (its fps is kept)."),
                CascadeVModelType.Input(
                    "cascadev_model",
                    optional=True,
                    tooltip="The model the conditioning is for: its tile sets the 'auto' size and every size is "
                    "checked against it here, before any work. Without it the released model's 1024-pixel tile.",
                ),
                Choice(
                    "resize",
                    options=list(RESIZE_MODES),
                    default="auto",
                    optional=True,
                    tooltip="auto = scale up until the short side covers one model tile; long_side = that many "
                    "pixels on the long side (e.g. 2048 for 2K); scale = times resize_value; none = as is "
                    "(must fit already).",
                ),
                io.Float.Input(
                    "resize_value",
                    default=0.0,
                    min=0.0,
                    max=16384.0,
                    step=0.01,
                    optional=True,
                    tooltip="Pixels of the long side (long_side) or the factor (scale); unused by auto and none.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    display_name="conditioning",
                    tooltip="Effnet conditioning [1, 16 + marker, T, H/32, W/32] for CascadeV Refine (Save Latent "
                    "stores it).",
                )
            ],
        )

    @classmethod
    def execute(cls, effnet, images=None, video=None, cascadev_model=None, resize="auto", resize_value=0.0):
        frames, fps = source_frames(images, video)
        if frames.ndim != 4 or frames.shape[-1] not in (3, 4) or frames.shape[0] < 1:
            raise ValueError(f"images: expected IMAGE frames [T, H, W, 3], got shape {tuple(frames.shape)}")
        t, h, w, _ = frames.shape
        tile = tile_pixels(cascadev_model.config.input_size) if cascadev_model is not None else RELEASED_TILE
        size = cascade_size(h, w, mode=resize, value=resize_value, tile=tile, where=f"{NODE}: resize")
        check_fits(
            [effnet_call(1, size.height, size.width), refine_state(1, t, size.height, size.width),
             frames_output(t, size.height, size.width)],
            memory_totals(),
            where=f"{NODE}: images",
            size=f"{t} frames of {size.width}x{size.height} pixels",
            fix="choose a smaller resize (long_side or scale), or cut the video into shorter parts",
        )  # fmt: skip
        effnet.load()
        clip = frames[..., :3].movedim(-1, 0)[None]  # [1, 3, T, H, W]: a view, converted frame by frame
        progress = comfy_progress(t)
        with comfy_interrupts():
            lat = encode_video(
                effnet.encoder, clip, on_step=progress.on_step, should_stop=progress.should_stop,
                size=(size.height, size.width), value_range=(0.0, 1.0),
            )  # fmt: skip
        meta = {"fps": fps, "source_size": [h, w], "size": [size.height, size.width], "frames": t}
        return io.NodeOutput(conditioning_latent(lat.cpu(), meta))


NODES = [CascadeVEncode]
