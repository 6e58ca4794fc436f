"""The cascade: frames -> effnet conditioning (LATENT) -> CascadeV refine (LATENT) -> sliced/tiled VAE decode.

Conditioning and refined latents travel as ComfyUI's core LATENT, so stock nodes (Save/Load Latent, VAE Decode)
work on them:

* conditioning: ``{"samples": [B, 16, T, H/32, W/32]}`` effnet latents (video layout, like other video latents);
* refined: ``{"samples": [B*T, 4, H/8, W/8]}`` SD-VAE latents, frames as batch (what the SVD temporal VAE and any
  4-channel SD VAE decode with stock ``VAEDecode``).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import torch
from comfy_api.latest import InputImpl, Types, io

from ..cascadev_core import refine as core_refine
from ..cascadev_core.effnet import encode_video
from ..cascadev_core.schedulers import SAMPLERS
from ..cascadev_core.tiling import BLEND_MODES, PAD_MODES, TILE_BLEND_MODES
from .bridge import comfy_interrupts, comfy_progress
from .types import CascadeVEffnetType, CascadeVModelType, CascadeVRefineOptionsType
from .validation import check_combos

EFFNET_STRIDE = 32


def images_from(images: torch.Tensor | None, video) -> torch.Tensor:
    """IMAGE ``[T, H, W, 3]`` in 0..1 from either input."""
    if images is not None and video is not None:
        raise ValueError("connect either 'images' or 'video', not both")
    if video is not None:
        return video.get_components().images
    if images is None:
        raise ValueError("connect 'images' (IMAGE frames) or 'video' (VIDEO): the frames to condition on")
    return images


def effnet_conditioning(conditioning: dict, config, videos: int | None = None) -> torch.Tensor:
    """The effnet latents ``[B, 16, T, h, w]`` of a conditioning LATENT, or an error naming the input."""
    cond = conditioning["samples"]
    channels = config.in_channels - config.latent_channels
    if cond.ndim != 5 or cond.shape[1] != channels or (videos is not None and cond.shape[0] != videos):
        b = "B" if videos is None else videos
        raise ValueError(
            f"conditioning: expected effnet latents [{b}, {channels}, T, h, w] from 'CascadeV Encode Frames', got "
            f"shape {tuple(cond.shape)}"
        )
    return cond


class CascadeVEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVEncode",
            display_name="CascadeV Encode Frames",
            category="CascadeV/cascade",
            description="Encodes the base model's frames with the effnet semantic encoder into the 16-channel "
            "1/32 conditioning latents CascadeV refines. The refined video has the size of these frames: scale "
            "them up first (e.g. 4x with a stock upscale node) for a 4x sharper output.",
            inputs=[
                CascadeVEffnetType.Input("effnet", tooltip="From 'Load CascadeV Effnet Encoder'."),
                io.Image.Input(
                    "images", optional=True, tooltip="Frames [T, H, W, 3]; H and W must be multiples of 32."
                ),
                io.Video.Input("video", optional=True, tooltip="A VIDEO instead of IMAGE frames."),
            ],
            outputs=[io.Latent.Output(display_name="conditioning", tooltip="Effnet latents [1, 16, T, H/32, W/32].")],
        )

    @classmethod
    def execute(cls, effnet, images=None, video=None) -> io.NodeOutput:
        frames = images_from(images, video)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"images: expected IMAGE frames [T, H, W, 3], got shape {tuple(frames.shape)}")
        t, h, w, _ = frames.shape
        if h % EFFNET_STRIDE or w % EFFNET_STRIDE:
            raise ValueError(
                f"images: height and width must be multiples of {EFFNET_STRIDE} (got {h}x{w}); resize or crop them "
                f"first, e.g. to {h // EFFNET_STRIDE * EFFNET_STRIDE}x{w // EFFNET_STRIDE * EFFNET_STRIDE}"
            )
        device = effnet.load()
        clip = frames.movedim(-1, 0)[None] * 2 - 1  # [1, 3, T, H, W] in [-1, 1]
        progress = comfy_progress(t)
        with comfy_interrupts():
            lat = encode_video(
                effnet.encoder, clip.to(device), on_step=progress.on_step, should_stop=progress.should_stop
            )
        return io.NodeOutput({"samples": lat.cpu()})


class CascadeVRefineOptions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVRefineOptions",
            display_name="CascadeV Refine Options",
            category="CascadeV/settings",
            description="Windowing, tiling and batching of the refine. Without this node the refine uses the "
            "official recipe (8-frame windows crossfaded at stride 4, tiles of the model size overwritten "
            "row-major, one window/tile per model call).",
            inputs=[
                io.Int.Input(
                    "window",
                    default=0,
                    min=0,
                    max=256,
                    tooltip="Temporal window in latent frames; 0 = the model's own (8).",
                ),
                io.Int.Input("window_stride", default=0, min=0, max=256, tooltip="Window step; 0 = half a window."),
                io.Combo.Input(
                    "window_blend",
                    options=list(BLEND_MODES),
                    default="crossfade",
                    tooltip="How overlapping windows are joined: crossfade (official), average, feather or overwrite.",
                ),
                io.Int.Input(
                    "tile",
                    default=0,
                    min=0,
                    max=1024,
                    tooltip="Spatial tile in latent pixels; 0 = the model's own (128).",
                ),
                io.Int.Input(
                    "tile_overlap",
                    default=-1,
                    min=-1,
                    max=1024,
                    tooltip="Tile overlap in latent pixels; -1 = official (a quarter tile).",
                ),
                io.Combo.Input(
                    "tile_blend",
                    options=list(TILE_BLEND_MODES),
                    default="overwrite",
                    tooltip="overwrite = official (visible seams possible); average / feather = "
                    "overlap-averaged tiles (HPDM), seam-free.",
                ),
                io.Int.Input(
                    "max_batch",
                    default=1,
                    min=1,
                    max=256,
                    tooltip="Windows/tiles per model call: more is faster and needs more memory.",
                ),
                io.Combo.Input(
                    "pad",
                    options=["none", *PAD_MODES],
                    default="none",
                    tooltip="Pad inputs shorter than one window or smaller than one tile (then crop "
                    "back) instead of failing.",
                ),
                io.Float.Input(
                    "memory_budget_gb",
                    default=0.0,
                    min=0.0,
                    max=1024.0,
                    step=0.5,
                    tooltip="GiB one model call's activations may use; when above 0 it picks the batch of "
                    "windows/tiles per call instead of max_batch (weights not included).",
                ),
            ],
            outputs=[CascadeVRefineOptionsType.Output(display_name="options")],
        )

    @classmethod
    def validate_inputs(cls, window_blend, tile_blend, pad) -> bool | str:
        return check_combos(cls, window_blend=window_blend, tile_blend=tile_blend, pad=pad)

    @classmethod
    def execute(cls, window, window_stride, window_blend, tile, tile_overlap, tile_blend, max_batch, pad,
                memory_budget_gb=0.0):  # fmt: skip
        options = core_refine.RefineOptions(
            window=window or None,
            window_stride=window_stride or None,
            window_blend=window_blend,
            tile=tile or None,
            tile_overlap=None if tile_overlap < 0 else tile_overlap,
            tile_blend=tile_blend,
            max_batch=max_batch,
            pad=None if pad == "none" else pad,
            memory_budget=int(memory_budget_gb * 2**30) if memory_budget_gb > 0 else None,
        )
        options.validate()
        return io.NodeOutput(options)


class CascadeVRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVRefine",
            display_name="CascadeV Refine",
            category="CascadeV/cascade",
            description="Denoises SD-VAE latents conditioned on the effnet latents (the CascadeV LDM-VAE). Output "
            "latents are frames-as-batch and decode with 'CascadeV Decode' or a stock VAE Decode.",
            inputs=[
                CascadeVModelType.Input("cascadev_model", tooltip="From 'Load CascadeV Model'."),
                io.Latent.Input("conditioning", tooltip="Effnet latents from 'CascadeV Encode Frames'."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the initial and ancestral noises.",
                ),
                io.Int.Input("steps", default=8, min=1, max=200, tooltip="Sampler steps (official: 8)."),
                io.Combo.Input(
                    "sampler",
                    options=list(SAMPLERS),
                    default="euler_a",
                    tooltip="euler_a = official; ddim and dpmpp_2m are deterministic.",
                ),
                CascadeVRefineOptionsType.Input(
                    "options", optional=True, tooltip="Windows, tiles, blending, batching."
                ),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="SD-VAE latents [B*T, 4, H/8, W/8].")],
        )

    @classmethod
    def validate_inputs(cls, sampler) -> bool | str:
        return check_combos(cls, sampler=sampler)

    @classmethod
    def execute(cls, cascadev_model, conditioning, seed, steps, sampler, options=None) -> io.NodeOutput:
        cond = effnet_conditioning(conditioning, cascadev_model.config)
        cfg = cascadev_model.config
        options = options or core_refine.RefineOptions()
        device = cascadev_model.load()
        dit = cascadev_model.dit
        options = replace(options, sampler=sampler, steps=steps, model_dtype=dit.dtype)
        previews = RefinePreviews(device)
        progress = comfy_progress(options.steps, preview=previews.take)  # the refine reports its number of calls
        with comfy_interrupts():
            latents = core_refine.refine(
                dit,
                cond.to(device),
                lats_per_vid=cfg.lats_per_vid,
                input_size=cfg.input_size,
                options=options,
                seed=seed,
                scale_factor=cfg.scale_factor,
                on_step=progress.on_step,
                should_stop=progress.should_stop,
                callback=previews.update,
            )
        b, c, t, h, w = latents.shape
        return io.NodeOutput({"samples": latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).cpu()})


class RefinePreviews:
    """Latent previews for the progress bar: the first frame of each step's denoised estimate, shown through
    ComfyUI's previewer (SDXL's latent format: the same 0.13025-scaled SD latent space the refine works in)."""

    def __init__(self, device):
        import comfy.latent_formats
        import latent_preview

        self.previewer = latent_preview.get_previewer(device, comfy.latent_formats.SDXL())
        self.latest = None

    def update(self, info: dict) -> None:
        self.latest = info["denoised"][:1]

    def take(self, done: int):
        """A preview of the newest denoised estimate, once per step (None between steps)."""
        if self.previewer is None or self.latest is None:
            return None
        x0, self.latest = self.latest, None
        return self.previewer.decode_latent_to_preview_image("JPEG", x0)


class CascadeVDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVDecode",
            display_name="CascadeV Decode",
            category="CascadeV/cascade",
            description="Decodes refined latents through a ComfyUI VAE in temporal slices and spatial tiles, so a "
            "2K video never goes through the decoder at once. ComfyUI's VAE first handles an out-of-memory "
            "itself (its own tiled fallback); if a slice still runs out, this node retries it with smaller "
            "tiles, then fewer frames, before failing.",
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
                    tooltip="Tile overlap in output pixels (feather-blended).",
                ),
                io.Float.Input(
                    "fps", default=24.0, min=1.0, max=240.0, step=0.01, tooltip="Frame rate of the VIDEO output."
                ),
            ],
            outputs=[
                io.Image.Output(display_name="images"),
                io.Video.Output(display_name="video"),
            ],
        )

    @classmethod
    def execute(cls, latent, vae, frames_per_slice, tile_size, tile_overlap, fps) -> io.NodeOutput:
        from ..cascadev_core.vae_decode import decode_latents

        samples = latent["samples"]
        if samples.ndim != 4:
            raise ValueError(f"latent: expected frames-as-batch latents [N, C, h, w], got {tuple(samples.shape)}")
        ratio = vae.spacial_compression_decode()

        def decode(z: torch.Tensor) -> torch.Tensor:  # [n, C, h, w] -> [n, 3, H, W] in 0..1
            return vae.decode(z).movedim(-1, 1)

        video = samples.movedim(0, 1)[None]  # [1, C, T, h, w]: one video, frames in order
        progress = comfy_progress(-(-samples.shape[0] // frames_per_slice))
        with comfy_interrupts():
            frames = decode_latents(
                decode,
                video,
                frames_per_call=frames_per_slice,
                tile=tile_size // ratio if tile_size else None,
                overlap=tile_overlap // ratio,
                on_step=progress.on_step,
                should_stop=progress.should_stop,
            )
        images = frames[0].movedim(0, -1).clamp(0, 1)  # [T, H, W, 3]
        video_out = InputImpl.VideoFromComponents(
            Types.VideoComponents(images=images, frame_rate=Fraction(fps).limit_denominator(1001))
        )
        return io.NodeOutput(images, video_out)


NODES = [CascadeVEncode, CascadeVRefineOptions, CascadeVRefine, CascadeVDecode]
