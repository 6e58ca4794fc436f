"""CascadeV Refine Options and CascadeV Refine: effnet conditioning -> refined SD-VAE latents.

The refined latents travel as ComfyUI's core LATENT, frames as batch ``[B*T, 4, H/8, W/8]``, so stock nodes
(Save/Load Latent, VAE Decode with a 4-channel SD VAE) work on them.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..cascadev_core import refine as core_refine
from ..cascadev_core.footprint import check_fits, refine_state
from ..cascadev_core.schedulers import SAMPLERS
from ..cascadev_core.sizing import VAE_STRIDE, tile_pixels
from ..cascadev_core.tiling import BLEND_MODES, PAD_MODES, TILE_BLEND_MODES
from . import bridge, models
from .bridge import comfy_interrupts, comfy_progress
from .comfyui import internal, io
from .encode import META_KEY, effnet_conditioning
from .encode import NODE as ENCODE_NODE
from .models import memory_totals
from .types import CascadeVModelType, CascadeVRefineOptionsType, CascadeVWorkersType
from .validation import Choice

NODE = "CascadeV Refine"


class CascadeVRefineOptions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVRefineOptions",
            display_name="CascadeV Refine Options",
            category="CascadeV/settings",
            description="Windowing, tiling and batching of the refine. Without this node the refine uses the "
            "official recipe (8-frame windows crossfaded at stride 4, tiles of the model size overwritten "
            "row-major, one window/tile per model call); this node's defaults blend tiles seam-free (feather).",
            inputs=[
                io.Int.Input(
                    "window",
                    default=0,
                    min=0,
                    max=256,
                    tooltip="Temporal window in latent frames; 0 = the model's own.",
                ),
                io.Int.Input("window_stride", default=0, min=0, max=256, tooltip="Window step; 0 = half a window."),
                Choice(
                    "window_blend",
                    options=list(BLEND_MODES),
                    default="crossfade",
                    tooltip="How overlapping windows are joined: crossfade (official), average, feather or overwrite.",
                ),
                io.Int.Input(
                    "tile", default=0, min=0, max=1024, tooltip="Spatial tile in latent pixels; 0 = the model's own."
                ),
                io.Int.Input(
                    "tile_overlap",
                    default=-1,
                    min=-1,
                    max=1024,
                    tooltip="Tile overlap in latent pixels; -1 = official (a quarter tile).",
                ),
                Choice(
                    "tile_blend",
                    options=list(TILE_BLEND_MODES),
                    default="feather",
                    tooltip="feather / average = overlap-blended tiles (HPDM), seam-free; overwrite = official "
                    "(visible seams possible).",
                ),
                io.Int.Input(
                    "max_batch",
                    default=1,
                    min=1,
                    max=256,
                    tooltip="Windows/tiles per model call: more is faster and needs more memory.",
                ),
                Choice(
                    "pad",
                    options=["none", *PAD_MODES],
                    default="none",
                    tooltip="Pad frames smaller than one tile (then crop back) instead of failing. Fewer frames "
                    "than one window are always padded.",
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


class RefinePreviews:
    """Latent previews for the progress bar: the first frame of each step's denoised estimate, shown through
    ComfyUI's previewer (SDXL's latent format: the same 0.13025-scaled SD latent space the refine works in)."""

    def __init__(self, device):
        format_ = internal("comfy.latent_formats.SDXL")()
        self.previewer = internal("latent_preview.get_previewer")(device, format_)
        self.latest = None

    def update(self, info: dict) -> None:
        self.latest = info["denoised"][:1]

    def take(self, done: int):
        """A preview of the newest denoised estimate, once per step (None between steps)."""
        if self.previewer is None or self.latest is None:
            return None
        x0, self.latest = self.latest, None
        return self.previewer.decode_latent_to_preview_image("JPEG", x0)


def check_refine_size(cond, config, options: core_refine.RefineOptions, on_workers: bool = False) -> None:
    """Before any work: the conditioning's frames cover one tile (unless padded) and the whole-video state fits
    (on the model's device, or in RAM when workers run the model)."""
    b, _, t, h, w = cond.shape
    height, width = h * 32, w * 32
    tile = options.tile or config.input_size
    if options.pad is None and min(height, width) < tile * VAE_STRIDE:
        raise ValueError(
            f"conditioning: frames of {width}x{height} pixels are smaller than one tile of this model "
            f"({tile_pixels(tile)} pixels); encode them with '{ENCODE_NODE}' resize 'auto' (and this model on its "
            f"cascadev_model input)"
        )
    check_fits(
        [replace(refine_state(b, t, height, width), device="host" if on_workers else "model")],
        memory_totals(),
        where=f"{NODE}: conditioning",
        size=f"{b * t} frames of {width}x{height} pixels",
        fix=f"re-encode at a smaller size ('{ENCODE_NODE}' resize) or refine shorter parts",
    )


def worker_spec(cascadev_model):
    """How workers rebuild this DiT (the loader records its file, dtype and layout)."""
    if getattr(cascadev_model, "spec", None) is None:
        raise ValueError(
            f"workers: this cascadev_model does not say which file it was loaded from; load it with "
            f"'Load CascadeV Model' to run {NODE} on workers"
        )
    return cascadev_model.spec


class CascadeVRefine(io.ComfyNode):
    REQUIRES = (
        bridge.REQUIRES
        + models.REQUIRES
        + (
            "latent_preview.get_previewer",
            "comfy.latent_formats.SDXL",
            "comfy.model_management.get_total_memory",
        )
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVRefine",
            display_name=NODE,
            category="CascadeV/cascade",
            description="Denoises SD-VAE latents conditioned on the effnet latents (the CascadeV LDM-VAE). Output "
            "latents are frames-as-batch and decode with 'CascadeV Decode' or a stock VAE Decode.",
            inputs=[
                CascadeVModelType.Input("cascadev_model", tooltip="From 'Load CascadeV Model'."),
                io.Latent.Input("conditioning", tooltip=f"Effnet conditioning from '{ENCODE_NODE}'."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the initial and ancestral noises.",
                ),
                io.Int.Input("steps", default=8, min=1, max=200, tooltip="Sampler steps (official: 8)."),
                Choice(
                    "sampler",
                    options=list(SAMPLERS),
                    default="euler_a",
                    tooltip="euler_a = official; ddim and dpmpp_2m are deterministic.",
                ),
                CascadeVRefineOptionsType.Input(
                    "options", optional=True, tooltip="Windows, tiles, blending, batching."
                ),
                CascadeVWorkersType.Input(
                    "workers",
                    optional=True,
                    tooltip="From 'CascadeV Workers': run the model calls on Ray workers (one per GPU, each with "
                    "its own copy of the DiT); same result, this process then keeps the DiT off its GPU.",
                ),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="SD-VAE latents [B*T, 4, H/8, W/8].")],
        )

    @classmethod
    def execute(cls, cascadev_model, conditioning, seed, steps, sampler, options=None, workers=None) -> io.NodeOutput:
        cfg = cascadev_model.config
        cond = effnet_conditioning(conditioning, cfg)
        options = replace(options or core_refine.RefineOptions(), sampler=sampler, steps=steps)
        check_refine_size(cond, cfg, options, on_workers=workers is not None)
        executor = None if workers is None else workers.executor(worker_spec(cascadev_model))
        # with workers the state and blending stay on the CPU here; each worker holds the DiT on its own device
        device = cascadev_model.load() if executor is None else torch.device("cpu")
        previews = RefinePreviews(device)
        progress = comfy_progress(options.steps, preview=previews.take)  # the refine reports its number of calls
        with comfy_interrupts():
            latents = core_refine.refine(
                cascadev_model.dit,
                cond.to(device),
                lats_per_vid=cfg.lats_per_vid,
                input_size=cfg.input_size,
                options=options,
                seed=seed,
                scale_factor=cfg.scale_factor,
                on_step=progress.on_step,
                should_stop=progress.should_stop,
                callback=previews.update,
                executor=executor,
            )
        b, c, t, h, w = latents.shape
        out = {"samples": latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).cpu()}
        if META_KEY in conditioning:
            out[META_KEY] = conditioning[META_KEY]
        return io.NodeOutput(out)


NODES = [CascadeVRefineOptions, CascadeVRefine]
