"""CascadeV Decode: refined SD-VAE latents -> IMAGE frames and a VIDEO, through a ComfyUI VAE in temporal slices and
spatial tiles, straight into one preallocated IMAGE."""

from __future__ import annotations

from fractions import Fraction

import torch

from ..cascadev_core.footprint import check_fits, frames_output
from ..cascadev_core.vae_decode import decode_latents
from . import bridge
from .bridge import comfy_interrupts, comfy_progress
from .comfyui import InputImpl, Types, internal, io
from .encode import META_KEY
from .models import memory_totals

NODE = "CascadeV Decode"
DEFAULT_FPS = 16.0


def decoder(vae):
    """``decode(z [n, 4, h, w]) -> [n, 3, H, W]`` in 0..1: the VAE's decoder itself, on ComfyUI's device and dtype,
    so each call decodes exactly the frames it is given (``VAE.decode`` would re-split a slice to fit its own
    memory estimate and catch out-of-memory itself). A VAE object without those attributes is decoded through
    its ``decode``."""
    needed = ("first_stage_model", "process_output", "vae_dtype", "device", "output_device", "patcher")
    if not all(hasattr(vae, name) for name in needed):
        return lambda z: vae.decode(z)[..., :3].movedim(-1, 1)
    internal("comfy.model_management.load_models_gpu")([vae.patcher])

    def decode(z: torch.Tensor) -> torch.Tensor:
        z = z.to(dtype=vae.vae_dtype, device=vae.device)
        return vae.process_output(vae.first_stage_model.decode(z).float())[:, :3].to(vae.output_device)

    return decode


def check_image_vae(vae) -> None:
    """ValueError naming ``vae`` unless it decodes 4-channel image latents (what CascadeV refines)."""
    channels, dim = getattr(vae, "latent_channels", None), getattr(vae, "latent_dim", 2)
    if channels != 4 or dim != 2:
        kind = f"a {channels}-channel {'video' if dim == 3 else 'image'} VAE"
        raise ValueError(
            f"vae: CascadeV's refined latents are 4-channel SD-VAE latents, but the connected VAE is {kind} (e.g. the "
            "base video model's own). Load a 4-channel SD VAE such as vae-ft-mse-840000-ema-pruned.safetensors "
            "(VAE Loader), or SVD's temporal VAE (the VAE output of Image Only Checkpoint Loader with "
            "svd_xt.safetensors), the official decoder."
        )


class CascadeVDecode(io.ComfyNode):
    REQUIRES = bridge.REQUIRES + (
        "comfy.model_management.get_total_memory",
        "comfy.model_management.load_models_gpu",
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVDecode",
            display_name=NODE,
            category="CascadeV/cascade",
            description="Decodes refined latents through a ComfyUI VAE's decoder in temporal slices and spatial "
            "tiles. It matters for the SVD temporal VAE (the official decoder): each call sees the official 4 "
            "consecutive frames, which stock VAE Decode (all frames, or whatever fits) and VAE Decode (Tiled) (one "
            "frame per tile) do not; on out-of-memory it retries with smaller tiles, then fewer frames. Tiles are "
            "feather-blended in one pass (2x faster than VAE Decode (Tiled) measured, no visible seams). For a "
            "per-frame SD VAE stock VAE Decode gives the same pixels.",
            inputs=[
                io.Latent.Input("latent", tooltip="Latents [N, 4, h, w] (frames as batch), e.g. from CascadeV Refine."),
                io.Vae.Input("vae", tooltip="A 4-channel SD VAE; the official pipeline uses the SVD temporal VAE."),
                io.Int.Input(
                    "frames_per_slice", default=4, min=1, max=1024, tooltip="Frames per decoder call (official: 4)."
                ),
                io.Int.Input(
                    "tile_size",
                    default=0,
                    min=0,
                    max=8192,
                    step=8,
                    tooltip="Spatial tile in output pixels; 0 = whole frames.",
                ),
                io.Int.Input(
                    "tile_overlap",
                    default=64,
                    min=0,
                    max=4096,
                    step=8,
                    tooltip="Tile overlap in output pixels (feather-blended); smaller than tile_size.",
                ),
                io.Float.Input(
                    "fps",
                    default=0.0,
                    min=0.0,
                    max=240.0,
                    step=0.01,
                    tooltip=f"Frame rate of the VIDEO output; 0 = the source video's (when a VIDEO went into "
                    f"Encode Frames), else {DEFAULT_FPS:g}.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="images"),
                io.Video.Output(display_name="video"),
            ],
        )

    @classmethod
    def validate_inputs(cls, tile_overlap, tile_size) -> bool | str:
        if tile_size and tile_overlap >= tile_size:
            return f"tile_overlap ({tile_overlap}) must be smaller than tile_size ({tile_size}), or set tile_size 0"
        return True

    @classmethod
    def execute(cls, latent, vae, frames_per_slice, tile_size, tile_overlap, fps) -> io.NodeOutput:
        samples = latent["samples"]
        if samples.ndim != 4:
            raise ValueError(f"latent: expected frames-as-batch latents [N, C, h, w], got {tuple(samples.shape)}")
        check_image_vae(vae)
        ratio = vae.spacial_compression_decode()
        if tile_size and tile_size < 2 * ratio:
            raise ValueError(f"tile_size: expected 0 or at least {2 * ratio} pixels, got {tile_size}")
        t, _, h, w = samples.shape
        height, width = h * ratio, w * ratio
        check_fits(
            [frames_output(t, height, width)], memory_totals(), where=f"{NODE}: latent",
            size=f"{t} frames of {width}x{height} pixels", fix="decode shorter parts of the video",
        )  # fmt: skip
        images = torch.empty((t, height, width, 3), dtype=torch.float32)  # the IMAGE, filled slice by slice
        out = images.permute(3, 0, 1, 2)[None]  # a [1, 3, T, H, W] view of it

        decode = decoder(vae)
        progress = comfy_progress(-(-t // frames_per_slice))
        with comfy_interrupts():
            decode_latents(
                decode, samples.movedim(0, 1)[None], out=out, frames_per_call=frames_per_slice,
                tile=tile_size // ratio if tile_size else None, overlap=tile_overlap // ratio,
                on_step=progress.on_step, should_stop=progress.should_stop,
            )  # fmt: skip
        images.clamp_(0, 1)
        rate = fps or (latent.get(META_KEY) or {}).get("fps") or DEFAULT_FPS
        video = InputImpl.VideoFromComponents(
            Types.VideoComponents(images=images, frame_rate=Fraction(rate).limit_denominator(1001))
        )
        return io.NodeOutput(images, video)


NODES = [CascadeVDecode]
