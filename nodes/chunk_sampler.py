"""CascadeV Chunk Sampler: long image-to-video, chunk by chunk, with k-step noise search
(``cascadev_core.noise_search``) around a real ComfyUI video model.

An adapter (``i2v_*.py``) conditions the model on each chunk's guide image through the family's own ComfyUI node;
ComfyUI's sampling (``comfy.sample.sample_custom``) runs the k-step previews and the s-step full runs, each over
its own complete schedule: the scheduler's, or a SIGMAS input resampled to the run's length. A second model
(Wan 2.2 14B's low-noise expert) takes over below the noise level where the stock two-sampler graph switches.
Every candidate's initial noise and per-step sampler noise come from its own seed, so a candidate's result does
not depend on the batch it ran in, and its full run starts from exactly the noise its preview had.
"""

from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass
from fractions import Fraction

import torch

from ..cascadev_core.footprint import Estimate, check_fits, frames_output
from ..cascadev_core.noise_search import SearchOptions, default_evaluator, sample_chunks
from . import bridge, i2v_hunyuan, i2v_ltxv, i2v_svd, i2v_wan
from .bridge import comfy_interrupts, comfy_progress
from .candidate_previews import CandidatePreviews, json_safe
from .comfyui import ComfyUIFeatureMissing, InputImpl, Types, internal, io
from .i2v_base import I2VAdapter, I2VAdapterType
from .models import memory_totals
from .search_options import DEFAULTS, SearchOptionsType, search_settings
from .validation import Choice

NODE = "CascadeV Chunk Sampler"
SAMPLING = (
    "comfy.samplers.KSampler",
    "comfy.samplers.calculate_sigmas",
    "comfy.samplers.sampler_object",
    "comfy.sample.sample_custom",
    "comfy.sample.fix_empty_latent_channels",
    "comfy.utils.common_upscale",
    "comfy.k_diffusion.sampling.default_noise_sampler",
    "comfy.k_diffusion.sampling.BrownianTreeNoiseSampler",
)
#: ComfyUI samplers that evaluate the model twice per step (sizes the progress bar; counts are measured anyway)
EVALS_PER_STEP = {name: 2 for name in ("heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde")}


def sampler_lists() -> tuple[list[str], list[str]]:
    """ComfyUI's sampler and scheduler names (a minimal pair where this ComfyUI lacks them: the schema must load)."""
    try:
        ksampler = internal("comfy.samplers.KSampler")
    except ComfyUIFeatureMissing:
        return ["euler"], ["simple"]
    return list(ksampler.SAMPLERS), list(ksampler.SCHEDULERS)


# ---------------------------------------------------------------------------------------------------------------
# Schedules, experts and per-candidate noise
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Schedule:
    """Noise levels for a run of any length: the scheduler's, or a SIGMAS input resampled to that length."""

    model: object
    scheduler: str
    sampler_name: str | None
    sigmas: torch.Tensor | None = None

    @property
    def steps(self) -> int | None:
        """Steps of the SIGMAS input (None: the node's steps)."""
        return None if self.sigmas is None else len(self.sigmas) - 1

    def __call__(self, steps: int) -> torch.Tensor:
        """``[steps + 1]`` sigmas, descending to the schedule's last value."""
        if self.sigmas is not None:
            return resample_sigmas(self.sigmas, steps)
        discard = self.sampler_name in internal("comfy.samplers.KSampler").DISCARD_PENULTIMATE_SIGMA_SAMPLERS
        ms = self.model.get_model_object("model_sampling")
        sigmas = internal("comfy.samplers.calculate_sigmas")(ms, self.scheduler, steps + discard).cpu()
        return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas


def resample_sigmas(sigmas: torch.Tensor, steps: int) -> torch.Tensor:
    """A ``steps``-step version of a schedule ``[S + 1]``: its curve read at ``steps + 1`` evenly spaced points
    (linear interpolation over the step index), so a preview keeps the schedule's shape (e.g. LTXV's shift)."""
    sigmas = sigmas.float().cpu()
    if steps == len(sigmas) - 1:
        return sigmas
    pos = torch.linspace(0, len(sigmas) - 1, steps + 1, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=len(sigmas) - 2)
    frac = (pos - lo).float()
    return sigmas[lo] * (1 - frac) + sigmas[lo + 1] * frac


def expert_segments(sigmas: torch.Tensor, models: list, boundary: float | None) -> list[tuple[object, torch.Tensor]]:
    """``[(model, sigmas)]``: the high-noise model down to ``boundary``, the low-noise one from there (one model:
    one segment). The split is by noise level, so previews switch where the stock two-sampler graph does."""
    if len(models) == 1 or boundary is None:
        return [(models[0], sigmas)]
    steps = len(sigmas) - 1
    switch = next((i for i in range(steps) if float(sigmas[i]) <= boundary), steps)
    if switch in (0, steps):
        return [(models[0] if switch == steps else models[1], sigmas)]
    return [(models[0], sigmas[: switch + 1]), (models[1], sigmas[switch:])]


def noise_kind(sampler) -> str | None:
    """Which per-step noise a k-diffusion sampler draws: "brownian", "gaussian", or None (deterministic or not a
    k-diffusion sampler: then nothing is replaced)."""
    fn = getattr(sampler, "sampler_function", None)
    if fn is None or "noise_sampler" not in inspect.signature(fn).parameters:
        return None
    if "noise_sampler" in getattr(sampler, "extra_options", {}):
        return None  # the user's own choice
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return "gaussian"
    return "brownian" if "BrownianTreeNoiseSampler" in source else "gaussian"


def per_candidate_noise(kind: str, x: torch.Tensor, seeds: list[int], sigmas: torch.Tensor):
    """A k-diffusion ``noise_sampler(sigma, sigma_next)`` whose slice ``i`` (candidate ``i``) is drawn from
    ``seeds[i]`` alone, exactly as that sampler's default draws for a batch of one with that seed."""
    chunks = torch.tensor_split(x, len(seeds)) if len(seeds) > 1 else [x]
    if kind == "brownian":
        positive = sigmas[sigmas > 0]
        lo, hi = positive.min(), sigmas.max()
        tree = internal("comfy.k_diffusion.sampling.BrownianTreeNoiseSampler")
        samplers = [tree(c, lo, hi, seed=s, cpu=True) for c, s in zip(chunks, seeds)]
    else:
        gaussian = internal("comfy.k_diffusion.sampling.default_noise_sampler")
        samplers = [gaussian(c, seed=s) for c, s in zip(chunks, seeds)]
    if len(samplers) == 1:
        return samplers[0]
    return lambda sigma, sigma_next: torch.cat([s(sigma, sigma_next) for s in samplers])


def with_noise(sampler, noise_sampler):
    """A copy of a ComfyUI SAMPLER whose k-diffusion function gets ``noise_sampler``."""
    out = copy.copy(sampler)
    out.extra_options = {**sampler.extra_options, "noise_sampler": noise_sampler}
    return out


# ---------------------------------------------------------------------------------------------------------------
# One run of the chunk search against a ComfyUI model
# ---------------------------------------------------------------------------------------------------------------
class ChunkRun:
    """The plain callables ``sample_chunks`` needs, bound to ComfyUI models, a VAE and an adapter.

    Args:
        models: ``[model]`` or ``[high-noise model, low-noise model]`` (Wan 2.2 14B's experts).
        sampler: a ComfyUI SAMPLER (``KSAMPLER``).
        schedule: noise levels for any number of steps.
        boundary: the noise level where the low-noise model takes over (None: one model).
    """

    def __init__(self, models, vae, adapter: I2VAdapter, positive, negative, cfg, sampler, schedule, boundary=None):
        self.models, self.vae, self.adapter = models, vae, adapter
        self.cfg, self.sampler, self.schedule, self.boundary = cfg, sampler, schedule, boundary
        self.noise_kind = noise_kind(sampler)
        needs_zeros = adapter.uses_text and (positive is None or negative is None)
        zeros = zero_conditioning(models[0], adapter) if needs_zeros else None
        self.positive = positive if positive is not None else zeros
        self.negative = negative if negative is not None else zeros
        self._cache: tuple[torch.Tensor, object] | None = None
        self.noise_shape: tuple[int, ...] = ()

    def conditioned(self, image: torch.Tensor):
        """Conditioning for guide IMAGE ``[1, H, W, 3]`` at the model's frame size, cached for the guide in use
        (the previews and the full run of a chunk share it). Also sets ``noise_shape``."""
        if self._cache is not None and torch.equal(self._cache[0], image):
            return self._cache[1]
        cond = self.adapter.condition(self.positive, self.negative, self.vae, image)
        fix = internal("comfy.sample.fix_empty_latent_channels")
        cond.latent["samples"] = fix(self.models[0], cond.latent["samples"])
        self.noise_shape = self.adapter.noise_shape(cond.latent["samples"])
        self._cache = (image, cond)
        return cond

    def sample(self, noise: torch.Tensor, guide: torch.Tensor, num_steps: int, on_eval, seeds=None) -> torch.Tensor:
        """``noise [B, *noise_shape]``, guide ``[1, 3, H, W]`` -> sampled latents ``[B, *noise_shape]``."""
        cond = self.conditioned(guide.movedim(1, -1))
        b = noise.shape[0]
        empty = self.adapter.as_candidate(cond.latent["samples"]).expand(b, *self.noise_shape)
        x = self.adapter.to_model_batch(empty)
        noise = self.adapter.to_model_batch(noise.to(x.dtype))
        mask = cond.latent.get("noise_mask")
        seeds = list(seeds) if seeds is not None else list(range(b))
        sigmas = self.schedule(num_steps)
        last_sigma = [None]

        def count_evaluations(apply_model, args):
            sigma = float(args["timestep"].flatten()[0])
            if sigma != last_sigma[0]:  # cond and uncond of one step may come in several calls: count steps
                last_sigma[0] = sigma
                on_eval()
            return apply_model(args["input"], args["timestep"], **args["c"])

        sample_custom = internal("comfy.sample.sample_custom")
        for index, (model, part) in enumerate(expert_segments(sigmas, self.models, self.boundary)):
            model = model.clone()
            model.set_model_unet_function_wrapper(count_evaluations)
            sampler = self.sampler
            if self.noise_kind is not None:
                segment_seeds = [(s + index) % 2**64 for s in seeds] if len(seeds) == b else seeds
                if self.adapter.max_batch == 1:  # frames are the batch: one candidate, one seed for all
                    segment_seeds = segment_seeds[:1]
                sampler = with_noise(sampler, per_candidate_noise(self.noise_kind, x, segment_seeds, part))
            # like KSamplerAdvanced: the second expert continues from the first one's output with no new noise
            step_noise = noise if index == 0 else torch.zeros_like(x)
            x = sample_custom(
                model, step_noise, self.cfg, sampler, part, cond.positive, cond.negative, x, noise_mask=mask,
                disable_pbar=True, seed=seeds[0],
            )  # fmt: skip
        return self.adapter.from_model_batch(x, b)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """One candidate's latent ``[1, *noise_shape]`` -> frames ``[1, T, 3, H, W]``."""
        return self.adapter.decode(self.vae, x)


def zero_conditioning(model, adapter: I2VAdapter) -> list:
    """CONDITIONING of zeros with the model's text-context width (what ConditioningZeroOut gives, plus what the
    family's text encoder always adds): for running an image-to-video model with no prompt."""
    diffusion = model.model.diffusion_model
    for name in adapter.text_layers:
        try:
            layer = diffusion.get_submodule(name)
        except AttributeError:
            continue
        first = next((m for m in layer.modules() if isinstance(m, torch.nn.Linear)), None)
        if first is not None:
            return adapter.zero_text(first.in_features)
    raise ValueError("positive: this model needs text conditioning; connect 'positive' and 'negative'")


def check_family(model, vae, adapter: I2VAdapter) -> None:
    """Before any work: the model and the VAE make the latents this adapter's family makes."""
    channels = adapter.compression[0]
    model_channels = getattr(getattr(model.model, "latent_format", None), "latent_channels", channels)
    vae_channels = getattr(vae, "latent_channels", channels)
    name = type(adapter).__name__
    if model_channels != channels:
        raise ValueError(
            f"i2v: the {name} adapter makes {channels}-channel latents but the model works on {model_channels}-channel "
            "latents: connect the adapter of the model's family (e.g. 'CascadeV I2V Adapter (Wan 2.2 TI2V 5B)' for "
            "the 48-channel Wan 2.2 5B)"
        )
    if vae_channels != channels:
        raise ValueError(
            f"vae: the {name} adapter needs the family's {channels}-channel VAE; the connected VAE has {vae_channels}"
        )


def check_chunk_memory(adapter: I2VAdapter, options: SearchOptions) -> None:
    """Before any work: the candidates' latents fit the model's device and the joined video fits in RAM."""
    frames = adapter.length * options.num_chunks
    batch = options.batch_size or options.candidates
    check_fits(
        [Estimate("the candidates' noise and latents", batch * adapter.latent_values() * 4 * 4, "model"),
         frames_output(frames, adapter.height, adapter.width)],
        memory_totals(),
        where=f"{NODE}: i2v",
        size=f"{options.num_chunks} chunks of {adapter.length} frames at {adapter.width}x{adapter.height} pixels",
        fix="lower the adapter's width, height or length, the chunks, or the search batch_size",
    )  # fmt: skip


class CascadeVChunkSampler(io.ComfyNode):
    REQUIRES = bridge.REQUIRES + SAMPLING + ("comfy.model_management.get_total_memory",)

    @classmethod
    def define_schema(cls) -> io.Schema:
        samplers, schedulers = sampler_lists()
        return io.Schema(
            node_id="CascadeVChunkSampler",
            display_name="CascadeV Chunk Sampler (k-step noise search)",
            category="CascadeV/chunk sampler",
            description="Generates a long video chunk by chunk with an image-to-video model: each chunk starts "
            "from the previous chunk's last frame. Per chunk it previews several noises with a short schedule, "
            "scores them against the guide image and fully denoises only the best.",
            is_output_node=False,
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="An image-to-video model (Wan, HunyuanVideo 1.5, LTXV, SVD); for "
                    "Wan 2.2 14B its high-noise expert.",
                ),  # fmt: skip
                io.Vae.Input("vae", tooltip="The model's VAE."),
                I2VAdapterType.Input("i2v", tooltip="From a 'CascadeV I2V Adapter' node of the model's family."),
                io.Image.Input("start_image", tooltip="Guide of the first chunk; resized to the adapter's size."),
                io.Int.Input("chunks", default=2, min=1, max=1000, tooltip="Number of chunks (n)."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Base seed; every candidate of every chunk derives its own from it.",
                ),
                io.Int.Input(
                    "steps",
                    default=20,
                    min=1,
                    max=10000,
                    tooltip="Steps of the full schedule (s); a connected 'sigmas' sets them instead.",
                ),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, tooltip="Classifier-free guidance."),
                Choice(
                    "sampler_name",
                    options=samplers,
                    default="euler",
                    tooltip="ComfyUI sampler for previews and full runs (ignored when 'sampler' is connected); "
                    "ancestral and SDE samplers draw each candidate's noise from its own seed.",
                ),
                Choice(
                    "scheduler",
                    options=schedulers,
                    default="simple",
                    tooltip="ComfyUI scheduler (ignored when 'sigmas' is connected).",
                ),
                io.Float.Input("fps", default=16.0, min=1.0, max=240.0, step=0.01, tooltip="Frame rate of VIDEO."),
                io.Conditioning.Input(
                    "positive",
                    optional=True,
                    tooltip="Text conditioning (Wan, LTXV, HunyuanVideo); without it, zeros (as ConditioningZeroOut).",
                ),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative text conditioning."),
                SearchOptionsType.Input(
                    "search_options",
                    optional=True,
                    tooltip=f"Noise search settings; default: {DEFAULTS['mode']}, m={DEFAULTS['num_candidates']}, "
                    f"k={DEFAULTS['preview_steps']}.",
                ),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="Scores previews by CLIP similarity to the guide (the paper's evaluator); without it "
                    "the weight-free one (faithful to the guide, keeps motion, penalises flicker).",
                ),
                io.Model.Input(
                    "model_low_noise",
                    optional=True,
                    tooltip="Wan 2.2 14B's low-noise expert: takes over from 'model' below the noise level of "
                    "switch_step, in previews and full runs alike (as the stock two-KSampler graph).",
                ),
                io.Int.Input(
                    "switch_step",
                    default=0,
                    min=0,
                    max=10000,
                    optional=True,
                    tooltip="Step of the full schedule where model_low_noise takes over; 0 = half the steps "
                    "(the Wan 2.2 templates: 2 of 4, 10 of 20).",
                ),
                io.Sigmas.Input(
                    "sigmas",
                    optional=True,
                    tooltip="A schedule (e.g. LTXVScheduler) instead of scheduler and steps: full runs use it, "
                    "previews the same curve resampled to k steps.",
                ),
                io.Sampler.Input(
                    "sampler", optional=True, tooltip="A SAMPLER (e.g. KSamplerSelect) instead of sampler_name."
                ),
            ],
            outputs=[
                io.Image.Output(display_name="images"),
                io.Video.Output(display_name="video"),
                io.String.Output(display_name="report", tooltip="Per-chunk candidate scores, seeds and costs (JSON)."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, vae, i2v, start_image, chunks, seed, steps, cfg, sampler_name, scheduler, fps,
                positive=None, negative=None, search_options=None, clip_vision=None, model_low_noise=None,
                switch_step=0, sigmas=None, sampler=None) -> io.NodeOutput:  # fmt: skip
        if start_image.ndim != 4 or start_image.shape[-1] not in (3, 4):
            raise ValueError(f"start_image: expected an IMAGE [1, H, W, 3], got shape {tuple(start_image.shape)}")
        if sigmas is not None and (sigmas.ndim != 1 or len(sigmas) < 2):
            raise ValueError(f"sigmas: expected a schedule of at least 2 noise levels, got {tuple(sigmas.shape)}")
        for expert in (model, model_low_noise):
            if expert is not None:
                check_family(expert, vae, i2v)
        schedule = Schedule(model, scheduler, None if sampler is not None else sampler_name, sigmas)
        full_steps = schedule.steps or steps
        settings = search_settings(search_options)
        if i2v.max_batch is not None:
            settings["batch_size"] = i2v.max_batch
        settings["evals_per_step"] = EVALS_PER_STEP.get(sampler_name if sampler is None else "", 1)
        options = SearchOptions(num_chunks=chunks, steps=full_steps, seed=seed, **settings)
        check_chunk_memory(i2v, options)
        models = [model] if model_low_noise is None else [model, model_low_noise]
        boundary = None
        if model_low_noise is not None:
            switch = switch_step or full_steps // 2
            if not 0 < switch < full_steps:
                raise ValueError(f"switch_step: expected 1..{full_steps - 1} (0 = half), got {switch_step}")
            boundary = float(schedule(full_steps)[switch])
        ksampler = sampler if sampler is not None else internal("comfy.samplers.sampler_object")(sampler_name)
        run = ChunkRun(models, vae, i2v, positive, negative, cfg, ksampler, schedule, boundary)
        # the guide at the model's frame size, centre-cropped as the stock conditioning nodes do
        upscale = internal("comfy.utils.common_upscale")
        guide = upscale(start_image[:1, ..., :3].movedim(-1, 1), i2v.width, i2v.height, "bilinear", "center")
        guide = guide.clamp(0, 1)
        run.conditioned(guide.movedim(1, -1))
        previews = CandidatePreviews(cls.hidden.unique_id, options.mode)
        progress = comfy_progress(options.num_chunks * options.evaluations_per_chunk)
        with comfy_interrupts():
            result = sample_chunks(
                run.sample, guide, run.noise_shape, options, evaluator=evaluator(clip_vision), decode=run.decode,
                on_step=progress.on_step, should_stop=progress.should_stop, on_candidate=previews,
            )  # fmt: skip
        images = result.frames.movedim(1, -1).contiguous()
        video = InputImpl.VideoFromComponents(
            Types.VideoComponents(images=images, frame_rate=Fraction(fps).limit_denominator(1001))
        )
        return io.NodeOutput(images, video, json.dumps(json_safe(result.to_report()), indent=1))


def evaluator(clip_vision):
    """The paper's CLIP similarity (worst frame) with a CLIP vision model, else the weight-free default (faithful to
    the guide, keeps motion, penalises flicker)."""
    embed = None if clip_vision is None else (lambda x: image_embeddings(clip_vision, x))
    return default_evaluator(embed)


def image_embeddings(clip_vision, frames: torch.Tensor) -> torch.Tensor:
    """``[N, D]`` embeddings of frames ``[N, 3, H, W]``: a CLIP's projected image embeds; a model that gives one per
    token (SigLIP in ComfyUI, e.g. HunyuanVideo 1.5's: no pooling head) is mean-pooled over its tokens."""
    embeds = clip_vision.encode_image(frames.movedim(1, -1)).image_embeds
    return embeds.mean(dim=1) if embeds.ndim == 3 else embeds


NODES = [
    *i2v_wan.NODES,
    *i2v_hunyuan.NODES,
    *i2v_ltxv.NODES,
    *i2v_svd.NODES,
    CascadeVChunkSampler,
]
