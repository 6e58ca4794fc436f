"""Native path: the CascadeV DiT as a ComfyUI MODEL, so stock KSampler / SamplerCustom drive the refine.

``CascadeV As MODEL`` wraps the loaded DiT in a ``comfy.model_base.BaseModel`` (epsilon prediction, the official
linear beta schedule, SDXL's 0.13025 latent scale) whose diffusion model runs the same windows and tiles as
``CascadeV Refine`` (``cascadev_core.refine.WindowedDenoiser``). The effnet conditioning rides in the positive and
negative CONDITIONING as a concat input. ``CascadeV Official Sigmas`` gives the released sampler's schedule to
SamplerCustom; with it and the same sampler the native path reproduces ``CascadeV Refine`` (a test checks it).
"""

from __future__ import annotations

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_management as mm
import comfy.model_patcher
import comfy.model_sampling
import comfy.supported_models_base
import torch
from comfy_api.latest import io

from ..cascadev_core.conditioning import conditioning_frames
from ..cascadev_core.refine import RefineOptions, WindowedDenoiser
from ..cascadev_core.schedulers import official_schedule, sigma_to_timestep
from ..cascadev_core.tiling import official_tile_step, step_from_overlap
from .cascade import effnet_conditioning
from .types import CascadeVModelType, CascadeVRefineOptionsType


class CascadeVModelConfig(comfy.supported_models_base.BASE):
    """ComfyUI model config: eps prediction over diffusers' "linear" betas (ComfyUI calls it sqrt_linear)."""

    unet_config = {"disable_unet_model_creation": True}
    unet_extra_config = {}
    sampling_settings = {"beta_schedule": "sqrt_linear", "linear_start": 0.0001, "linear_end": 0.02}
    latent_format = comfy.latent_formats.SDXL  # scale 0.13025, no shift: the refine's latent space


class OfficialSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
    """The official start ``x = noise * sigma_max`` (ComfyUI would use sqrt(1 + sigma_max^2) at full denoise)."""

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return super().noise_scaling(sigma, noise, latent_image, max_denoise=False)


class WindowedDiT(torch.nn.Module):
    """The diffusion model ComfyUI calls: eps of frames-as-batch latents through the official windows/tiles.

    ``forward(x [N, 4 + 16, H, W], t [N], num_video_frames=T, transformer_options=...) -> eps [N, 4, H, W]`` with
    N = videos x T. The DiT's timestep is computed from the exact sigma (ComfyUI rounds to an integer timestep).
    """

    def __init__(self, dit: torch.nn.Module, options: RefineOptions):
        super().__init__()
        self.dit = dit
        self.options = options

    @property
    def dtype(self) -> torch.dtype:
        return self.dit.dtype

    def forward(self, x, timesteps, context=None, control=None, transformer_options=None, num_video_frames=None, **kw):
        mm.throw_exception_if_processing_interrupted()
        cfg, o = self.dit.config, self.options
        frames = int(num_video_frames or x.shape[0])
        if x.shape[0] % frames:
            raise ValueError(f"latent: batch {x.shape[0]} is not a whole number of {frames}-frame videos")
        sigmas = (transformer_options or {}).get("sigmas")
        t = sigma_to_timestep(sigmas.float()) if sigmas is not None else timesteps.float()
        tile = o.tile or cfg.input_size
        windowed = WindowedDenoiser(
            self.dit, x.shape[0] // frames, frames, x.shape[-2], x.shape[-1], o.window or cfg.lats_per_vid, tile,
            o.window_stride, step_from_overlap(tile, o.tile_overlap, official_tile_step(tile), "tile"),
            o.window_blend, o.tile_blend, o.max_batch, o.pad, self.dit.dtype,
        )  # fmt: skip
        return windowed(x.float(), t.to(x.device))


class CascadeVNativeModel(comfy.model_base.BaseModel):
    """``BaseModel`` around :class:`WindowedDiT`; the effnet conditioning comes in as ``cascadev_cond``."""

    def __init__(self, dit: torch.nn.Module, options: RefineOptions):
        config = CascadeVModelConfig(CascadeVModelConfig.unet_config)
        super().__init__(config, comfy.model_base.ModelType.EPS, device=None)
        self.model_sampling = OfficialSampling(config)
        self.diffusion_model = WindowedDiT(dit, options)

    def extra_conds(self, **kwargs):
        cond = kwargs["cascadev_cond"]  # [T, 16, H, W], upsampled x4 and scaled like the official z_ref
        return {
            "c_concat": comfy.conds.CONDNoiseShape(cond),
            "num_video_frames": comfy.conds.CONDConstant(cond.shape[0]),
        }


class CascadeVAsModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVAsModel",
            display_name="CascadeV As MODEL (native sampling)",
            category="CascadeV/native",
            description="Turns the CascadeV DiT and its effnet conditioning into a MODEL, CONDITIONING and an empty "
            "LATENT for stock KSampler / SamplerCustom (cfg 1: the model has no unconditional branch). Use "
            "'CascadeV Official Sigmas' with SamplerCustom for the released schedule.",
            inputs=[
                CascadeVModelType.Input("cascadev_model", tooltip="From 'Load CascadeV Model'."),
                io.Latent.Input("conditioning", tooltip="Effnet latents from 'CascadeV Encode Frames'."),
                CascadeVRefineOptionsType.Input(
                    "options", optional=True, tooltip="Windows, tiles, blending and batching of each model call."
                ),
            ],
            outputs=[
                io.Model.Output(display_name="model"),
                io.Conditioning.Output(display_name="positive"),
                io.Conditioning.Output(display_name="negative"),
                io.Latent.Output(display_name="latent", tooltip="Empty latents [T, 4, H/8, W/8] to sample."),
            ],
        )

    @classmethod
    def execute(cls, cascadev_model, conditioning, options=None) -> io.NodeOutput:
        cfg = cascadev_model.config
        cond = effnet_conditioning(conditioning, cfg, videos=1)
        frames = conditioning_frames(cond, scale_factor=cfg.scale_factor)  # [T, 16, H, W]
        native = CascadeVNativeModel(cascadev_model.dit, options or RefineOptions())
        patcher = comfy.model_patcher.ModelPatcher(
            native, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
        )
        positive = [[torch.zeros(1, 1, 1), {"cascadev_cond": frames}]]
        latent = {"samples": torch.zeros(frames.shape[0], cfg.latent_channels, *frames.shape[-2:])}
        return io.NodeOutput(patcher, positive, positive, latent)


class CascadeVOfficialSigmas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVOfficialSigmas",
            display_name="CascadeV Official Sigmas",
            category="CascadeV/native",
            description="The released sampler's noise levels (diffusers' Euler-ancestral schedule, linspace "
            "timesteps) for SamplerCustom, ending at 0.",
            inputs=[io.Int.Input("steps", default=8, min=1, max=1000, tooltip="Sampler steps (official: 8).")],
            outputs=[io.Sigmas.Output(display_name="sigmas")],
        )

    @classmethod
    def execute(cls, steps) -> io.NodeOutput:
        return io.NodeOutput(official_schedule(steps).sigmas.float().cpu())


NODES = [CascadeVAsModel, CascadeVOfficialSigmas]
