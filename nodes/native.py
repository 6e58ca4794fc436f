"""Native path: the CascadeV DiT as a ComfyUI MODEL, so stock KSampler / SamplerCustom drive the refine.

The loader wraps the DiT once in :func:`native_model` (a ``comfy.model_base.BaseModel``: epsilon prediction, the
official linear beta schedule, SDXL's 0.13025 latent scale) and that model's patcher is the DiT's only owner.
``CascadeV As MODEL`` hands out a clone of it whose ``transformer_options`` carry the refine options, so its
diffusion model runs the same windows and tiles as ``CascadeV Refine``, built by the same factory
(:func:`cascadev_core.refine.windowed_denoiser`). The effnet conditioning rides in the positive and negative
CONDITIONING as a concat input. ``CascadeV Official Sigmas`` gives the released sampler's schedule to SamplerCustom;
with it and the same sampler the native path reproduces ``CascadeV Refine`` (a test checks it).

The ComfyUI classes are subclassed only when first needed, so a ComfyUI that changed them disables these two
nodes, not the pack.
"""

from __future__ import annotations

import functools

import torch

from ..cascadev_core.conditioning import conditioning_frames
from ..cascadev_core.refine import RefineOptions, windowed_denoiser
from ..cascadev_core.schedulers import official_schedule, sigma_to_timestep
from .comfyui import internal, io
from .encode import effnet_conditioning
from .types import CascadeVModelType, CascadeVRefineOptionsType

OPTIONS_KEY = "cascadev_refine_options"
REQUIRES = (
    "comfy.model_base.BaseModel",
    "comfy.model_base.ModelType",
    "comfy.supported_models_base.BASE",
    "comfy.model_sampling.ModelSamplingDiscrete",
    "comfy.model_sampling.EPS",
    "comfy.conds.CONDNoiseShape",
    "comfy.conds.CONDConstant",
    "comfy.latent_formats.SDXL",
    "comfy.model_management.throw_exception_if_processing_interrupted",
)


class WindowedDiT(torch.nn.Module):
    """The diffusion model ComfyUI calls: eps of frames-as-batch latents through the refine's windows and tiles.

    ``forward(x [N, 4 + 16, H, W], t [N], num_video_frames=T, transformer_options=...) -> eps [N, 4, H, W]`` with
    N = videos x T. The options come from ``transformer_options[OPTIONS_KEY]`` (official recipe without them);
    the DiT's timestep is computed from the exact sigma (ComfyUI rounds to an integer timestep).
    """

    def __init__(self, dit: torch.nn.Module):
        super().__init__()
        self.dit = dit

    @property
    def dtype(self) -> torch.dtype:
        return self.dit.dtype

    def forward(self, x, timesteps, context=None, control=None, transformer_options=None, num_video_frames=None, **kw):
        internal("comfy.model_management.throw_exception_if_processing_interrupted")()
        transformer_options = transformer_options or {}
        cfg = self.dit.config
        frames = int(num_video_frames or x.shape[0])
        if x.shape[0] % frames:
            raise ValueError(f"latent: batch {x.shape[0]} is not a whole number of {frames}-frame videos")
        sigmas = transformer_options.get("sigmas")
        t = sigma_to_timestep(sigmas.float()) if sigmas is not None else timesteps.float()
        options = transformer_options.get(OPTIONS_KEY) or RefineOptions()
        windowed = windowed_denoiser(
            self.dit, options, x.shape[0] // frames, frames, x.shape[-2], x.shape[-1], cfg.lats_per_vid, cfg.input_size
        )
        return windowed(x.float(), t.to(x.device))


@functools.cache
def _native_classes() -> type:
    """Subclass ComfyUI's model classes (on first use): returns the ``BaseModel`` subclass."""
    base_config = internal("comfy.supported_models_base.BASE")
    sampling_discrete = internal("comfy.model_sampling.ModelSamplingDiscrete")
    eps = internal("comfy.model_sampling.EPS")
    base_model = internal("comfy.model_base.BaseModel")

    class CascadeVModelConfig(base_config):
        """eps prediction over diffusers' "linear" betas (ComfyUI calls it sqrt_linear)."""

        unet_config = {"disable_unet_model_creation": True}
        unet_extra_config = {}
        sampling_settings = {"beta_schedule": "sqrt_linear", "linear_start": 0.0001, "linear_end": 0.02}
        latent_format = internal("comfy.latent_formats.SDXL")  # scale 0.13025, no shift: the refine's latents

    class OfficialSampling(sampling_discrete, eps):
        """The official start ``x = noise * sigma_max`` (ComfyUI would use sqrt(1 + sigma_max^2))."""

        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            return super().noise_scaling(sigma, noise, latent_image, max_denoise=False)

    class CascadeVNativeModel(base_model):
        """``BaseModel`` around :class:`WindowedDiT`; the effnet conditioning comes in as ``cascadev_cond``."""

        def __init__(self, dit: torch.nn.Module):
            config = CascadeVModelConfig(CascadeVModelConfig.unet_config)
            super().__init__(config, internal("comfy.model_base.ModelType").EPS, device=None)
            self.model_sampling = OfficialSampling(config)
            self.diffusion_model = WindowedDiT(dit)

        def extra_conds(self, **kwargs):
            cond = kwargs["cascadev_cond"]  # [T, 16, H, W], upsampled x4 and scaled like the official z_ref
            return {
                "c_concat": internal("comfy.conds.CONDNoiseShape")(cond),
                "num_video_frames": internal("comfy.conds.CONDConstant")(cond.shape[0]),
            }

    return CascadeVNativeModel


def native_model(dit: torch.nn.Module) -> torch.nn.Module:
    """The DiT inside ComfyUI's ``BaseModel`` (what a MODEL's patcher holds)."""
    return _native_classes()(dit)


class CascadeVAsModel(io.ComfyNode):
    REQUIRES = REQUIRES

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
        model = cascadev_model.patcher.clone()  # shares the loader's model: one owner
        model.model_options.setdefault("transformer_options", {})[OPTIONS_KEY] = options or RefineOptions()
        positive = [[torch.zeros(1, 1, 1), {"cascadev_cond": frames}]]
        latent = {"samples": torch.zeros(frames.shape[0], cfg.latent_channels, *frames.shape[-2:])}
        return io.NodeOutput(model, positive, positive, latent)


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
