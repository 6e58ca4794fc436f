"""Long image-to-video, chunk by chunk, with k-step noise search (``cascadev_core.noise_search``) around a real
ComfyUI video model: the adapters condition the model on each chunk's guide image, ComfyUI's own sampler runs the
k-step previews and the s-step full runs, and the node streams candidate thumbnails and scores to the canvas."""

from __future__ import annotations

import base64
import io as bytes_io
import json
from fractions import Fraction

import torch

from ..cascadev_core.noise_search import EmbeddingSimilarity, SearchOptions, sample_chunks, weight_free_evaluator
from ..cascadev_core.noise_search.options import MODES
from . import bridge
from .bridge import comfy_interrupts, comfy_progress
from .comfyui import ComfyUIFeatureMissing, InputImpl, Types, internal, io
from .i2v_adapters import LTXVI2V, SVDI2V, I2VAdapter, WanI2V
from .validation import Choice

I2VAdapterType = io.Custom("CASCADEV_I2V")
#: the search used when no options node is connected; also the options node's widget defaults
DEFAULT_SEARCH = dict(
    mode="search", num_candidates=4, preview_steps=4, batch_size=None, color_correction=0.0,
    keep_guide_frame=False, score_frames=None, score_size=224,
)  # fmt: skip
SearchOptionsType = io.Custom("CASCADEV_SEARCH_OPTIONS")
#: ComfyUI samplers that evaluate the model twice per step (sizes the progress bar; counts are measured anyway)
EVALS_PER_STEP = {name: 2 for name in ("heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde")}
PREVIEW_EVENT = "cascadev.chunk_candidates"
THUMBNAIL_SIZE = 128


def sampler_lists() -> tuple[list[str], list[str]]:
    """ComfyUI's sampler and scheduler names (a minimal pair where this ComfyUI lacks them: the schema must load)."""
    try:
        ksampler = internal("comfy.samplers.KSampler")
    except ComfyUIFeatureMissing:
        return ["euler"], ["simple"]
    return list(ksampler.SAMPLERS), list(ksampler.SCHEDULERS)


# ---------------------------------------------------------------------------------------------------------------
# Adapter nodes (one per model family)
# ---------------------------------------------------------------------------------------------------------------
def _size_inputs(width: int, height: int, length: int, step: int, length_step: int, min_size: int, min_length: int):
    return [
        io.Int.Input("width", default=width, min=min_size, max=8192, step=step, tooltip="Frame width in pixels."),
        io.Int.Input("height", default=height, min=min_size, max=8192, step=step, tooltip="Frame height in pixels."),
        io.Int.Input("length", default=length, min=min_length, max=4096, step=length_step, tooltip="Frames per chunk."),
    ]


class CascadeVI2VWan(io.ComfyNode):
    REQUIRES = ("comfy_extras.nodes_wan.WanImageToVideo",)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVI2VWan",
            display_name="CascadeV I2V Adapter (Wan)",
            category="CascadeV/chunk sampler",
            description="Conditions a Wan 2.1/2.2 image-to-video model on each chunk's guide image, as "
            "WanImageToVideo does.",
            inputs=[
                *_size_inputs(832, 480, 81, 16, 4, min_size=16, min_length=1),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="CLIP vision model for Wan 2.1 I2V (encodes each guide image).",
                ),
            ],
            outputs=[I2VAdapterType.Output(display_name="i2v")],
        )

    @classmethod
    def execute(cls, width, height, length, clip_vision=None) -> io.NodeOutput:
        return io.NodeOutput(WanI2V(width=width, height=height, length=length, clip_vision=clip_vision))


class CascadeVI2VSVD(io.ComfyNode):
    REQUIRES = ("comfy_extras.nodes_video_model.SVD_img2vid_Conditioning",)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVI2VSVD",
            display_name="CascadeV I2V Adapter (SVD)",
            category="CascadeV/chunk sampler",
            description="Conditions Stable Video Diffusion on each chunk's guide image, as "
            "SVD_img2vid_Conditioning does (no text prompt; one candidate per model call).",
            inputs=[
                io.ClipVision.Input("clip_vision", tooltip="SVD's CLIP vision encoder (from the SVD checkpoint)."),
                io.Int.Input("width", default=1024, min=16, max=8192, step=8, tooltip="Frame width in pixels."),
                io.Int.Input("height", default=576, min=16, max=8192, step=8, tooltip="Frame height in pixels."),
                io.Int.Input("video_frames", default=14, min=1, max=4096, tooltip="Frames per chunk."),
                io.Int.Input("motion_bucket_id", default=127, min=1, max=1023, tooltip="SVD motion amount."),
                io.Int.Input("fps", default=6, min=1, max=1024, tooltip="SVD fps conditioning."),
                io.Float.Input(
                    "augmentation_level",
                    default=0.0,
                    min=0.0,
                    max=10.0,
                    step=0.01,
                    tooltip="Noise added to the guide before encoding.",
                ),
            ],
            outputs=[I2VAdapterType.Output(display_name="i2v")],
        )

    @classmethod
    def execute(cls, clip_vision, width, height, video_frames, motion_bucket_id, fps, augmentation_level):
        return io.NodeOutput(
            SVDI2V(clip_vision, width, height, video_frames, motion_bucket_id, fps, augmentation_level)
        )


class CascadeVI2VLTXV(io.ComfyNode):
    REQUIRES = ("comfy_extras.nodes_lt.LTXVImgToVideo",)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVI2VLTXV",
            display_name="CascadeV I2V Adapter (LTXV)",
            category="CascadeV/chunk sampler",
            description="Conditions LTX-Video on each chunk's guide image, as LTXVImgToVideo does.",
            inputs=[
                *_size_inputs(768, 512, 97, 32, 8, min_size=64, min_length=9),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="How strongly the first frame is held to the guide.",
                ),
            ],
            outputs=[I2VAdapterType.Output(display_name="i2v")],
        )

    @classmethod
    def execute(cls, width, height, length, strength) -> io.NodeOutput:
        return io.NodeOutput(LTXVI2V(width=width, height=height, length=length, strength=strength))


class CascadeVSearchOptions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVSearchOptions",
            display_name="CascadeV Noise Search Options",
            category="CascadeV/chunk sampler",
            description="How each chunk picks its noise: search (m noises previewed with k steps, the best one "
            "fully denoised: m*k+s evaluations), naive (one noise: s) or brute_force (m full runs: m*s).",
            inputs=[
                Choice(
                    "mode", options=list(MODES), default=DEFAULT_SEARCH["mode"], tooltip="search, naive or brute_force."
                ),
                io.Int.Input(
                    "candidates",
                    default=DEFAULT_SEARCH["num_candidates"],
                    min=1,
                    max=64,
                    tooltip="Noises per chunk (m).",
                ),
                io.Int.Input(
                    "preview_steps",
                    default=DEFAULT_SEARCH["preview_steps"],
                    min=1,
                    max=200,
                    tooltip="Steps of the preview schedule (k); at most the sampler's steps.",
                ),
                io.Int.Input(
                    "batch_size",
                    default=0,
                    min=0,
                    max=64,
                    tooltip="Candidates per model call (memory budget); 0 = all at once.",
                ),
                io.Float.Input(
                    "color_correction",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Pull each chunk's colours toward the first chunk's (0 = off).",
                ),
                io.Boolean.Input(
                    "keep_guide_frame",
                    default=False,
                    tooltip="Keep each chunk's first frame (a repeat of the previous chunk's last).",
                ),
                io.Int.Input(
                    "score_frames",
                    default=0,
                    min=0,
                    max=4096,
                    tooltip="Score previews on this many evenly spaced frames; 0 = all.",
                ),
                io.Int.Input(
                    "score_size",
                    default=DEFAULT_SEARCH["score_size"],
                    min=0,
                    max=4096,
                    tooltip="Downscale frames to this longer side (0, or at least 8) before scoring; 0 = full size.",
                ),
            ],
            outputs=[SearchOptionsType.Output(display_name="search_options")],
        )

    @classmethod
    def validate_inputs(cls, score_size) -> bool | str:
        if 0 < score_size < 8:
            return f"score_size: expected 0 (full size) or at least 8, got {score_size}"
        return True

    @classmethod
    def execute(cls, mode, candidates, preview_steps, batch_size, color_correction, keep_guide_frame, score_frames,
                score_size) -> io.NodeOutput:  # fmt: skip
        return io.NodeOutput(
            dict(
                mode=mode,
                num_candidates=candidates,
                preview_steps=preview_steps,
                batch_size=batch_size or None,
                color_correction=color_correction,
                keep_guide_frame=keep_guide_frame,
                score_frames=score_frames or None,
                score_size=score_size or None,
            )  # fmt: skip
        )


# ---------------------------------------------------------------------------------------------------------------
# The sampler node
# ---------------------------------------------------------------------------------------------------------------
class CascadeVChunkSampler(io.ComfyNode):
    REQUIRES = bridge.REQUIRES + (
        "comfy.samplers.KSampler",
        "comfy.sample.sample",
        "comfy.sample.fix_empty_latent_channels",
        "comfy.utils.common_upscale",
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVChunkSampler",
            display_name="CascadeV Chunk Sampler (k-step noise search)",
            category="CascadeV/chunk sampler",
            description="Generates a long video chunk by chunk with an image-to-video model: each chunk starts "
            "from the previous chunk's last frame. Per chunk it previews several noises with a short schedule, "
            "scores them against the guide image and fully denoises only the best.",
            is_output_node=False,
            inputs=[
                io.Model.Input("model", tooltip="An image-to-video model (Wan I2V, SVD, LTXV)."),
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
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Steps of the full schedule (s)."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, tooltip="Classifier-free guidance."),
                Choice(
                    "sampler_name",
                    options=sampler_lists()[0],
                    default="euler",
                    tooltip="ComfyUI sampler for previews and full runs (a deterministic one makes "
                    "results independent of the batch size).",
                ),
                Choice(
                    "scheduler",
                    options=sampler_lists()[1],
                    default="simple",
                    tooltip="ComfyUI scheduler.",
                ),
                io.Float.Input("fps", default=16.0, min=1.0, max=240.0, step=0.01, tooltip="Frame rate of VIDEO."),
                io.Conditioning.Input(
                    "positive",
                    optional=True,
                    tooltip="Text conditioning (Wan, LTXV); without it, zeros (as ConditioningZeroOut).",
                ),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative text conditioning."),
                SearchOptionsType.Input(
                    "search_options", optional=True, tooltip="Noise search settings; default: search, m=4, k=4."
                ),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="Scores previews by CLIP similarity to the guide (the paper's "
                    "evaluator); without it, SSIM + colour drift + flicker.",
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
                positive=None, negative=None, search_options=None, clip_vision=None) -> io.NodeOutput:  # fmt: skip
        if start_image.ndim != 4 or start_image.shape[-1] not in (3, 4):
            raise ValueError(f"start_image: expected an IMAGE [1, H, W, 3], got shape {tuple(start_image.shape)}")
        settings = {**DEFAULT_SEARCH, **(search_options or {})}
        if i2v.max_batch is not None:
            settings["batch_size"] = i2v.max_batch
        settings["evals_per_step"] = EVALS_PER_STEP.get(sampler_name, 1)
        options = SearchOptions(num_chunks=chunks, steps=steps, seed=seed, **settings)
        run = ChunkRun(model, vae, i2v, positive, negative, cfg, sampler_name, scheduler, seed)
        # the guide at the model's frame size, centre-cropped as the stock conditioning nodes do
        guide = internal("comfy.utils.common_upscale")(start_image[:1, ..., :3].movedim(-1, 1), i2v.width, i2v.height,
                                           "bilinear", "center").clamp(0, 1)  # fmt: skip
        run.conditioned(guide.movedim(1, -1))
        evaluator = run.evaluator(clip_vision, options, cls.hidden.unique_id)
        progress = comfy_progress(options.num_chunks * options.evaluations_per_chunk)
        with comfy_interrupts():
            result = sample_chunks(
                run.sample,
                guide,
                run.noise_shape,
                options,
                evaluator=evaluator,
                decode=run.decode,
                on_step=progress.on_step,
                should_stop=progress.should_stop,
            )
        images = result.frames.movedim(1, -1).contiguous()
        video = InputImpl.VideoFromComponents(
            Types.VideoComponents(images=images, frame_rate=Fraction(fps).limit_denominator(1001))
        )
        return io.NodeOutput(images, video, json.dumps(result.to_report(), indent=1))


class ChunkRun:
    """The plain callables ``sample_chunks`` needs, bound to one ComfyUI model, VAE and adapter."""

    def __init__(self, model, vae, adapter: I2VAdapter, positive, negative, cfg, sampler_name, scheduler, seed):
        self.model, self.vae, self.adapter = model, vae, adapter
        needs_zeros = adapter.uses_text and (positive is None or negative is None)
        zeros = zero_conditioning(model) if needs_zeros else None
        self.positive = positive if positive is not None else zeros
        self.negative = negative if negative is not None else zeros
        self.cfg, self.sampler_name, self.scheduler, self.seed = cfg, sampler_name, scheduler, seed
        self._cache: tuple[torch.Tensor, object] | None = None
        self.noise_shape: tuple[int, ...] = ()

    def conditioned(self, image: torch.Tensor):
        """Conditioning for guide IMAGE ``[1, H, W, 3]`` at the model's frame size, cached for the guide in use
        (the previews and the full run of a chunk share it). Also sets ``noise_shape``."""
        if self._cache is not None and torch.equal(self._cache[0], image):
            return self._cache[1]
        cond = self.adapter.condition(self.positive, self.negative, self.vae, image)
        cond.latent["samples"] = internal("comfy.sample.fix_empty_latent_channels")(self.model, cond.latent["samples"])
        self.noise_shape = self.adapter.noise_shape(cond.latent["samples"])
        self._cache = (image, cond)
        return cond

    def sample(self, noise: torch.Tensor, guide: torch.Tensor, num_steps: int, on_eval) -> torch.Tensor:
        """``noise [B, *noise_shape]``, guide ``[1, 3, H, W]`` -> sampled latents ``[B, *noise_shape]``."""
        cond = self.conditioned(guide.movedim(1, -1))
        b = noise.shape[0]
        latent = self.adapter.to_model_batch(
            self.adapter.as_candidate(cond.latent["samples"]).expand(b, *self.noise_shape)
        )
        mask = cond.latent.get("noise_mask")
        model = self.model.clone()
        last_sigma = [None]

        def count_evaluations(apply_model, args):
            sigma = float(args["timestep"].flatten()[0])
            if sigma != last_sigma[0]:  # cond and uncond of one step may come in several calls: count steps
                last_sigma[0] = sigma
                on_eval()
            return apply_model(args["input"], args["timestep"], **args["c"])

        model.set_model_unet_function_wrapper(count_evaluations)
        out = internal("comfy.sample.sample")(
            model, self.adapter.to_model_batch(noise.to(latent.dtype)), num_steps, self.cfg, self.sampler_name,
            self.scheduler, cond.positive, cond.negative, latent, noise_mask=mask, disable_pbar=True, seed=self.seed,
        )  # fmt: skip
        return self.adapter.from_model_batch(out, b)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """One candidate's latent ``[1, *noise_shape]`` -> frames ``[1, T, 3, H, W]``."""
        return self.adapter.decode(self.vae, x)

    def evaluator(self, clip_vision, options: SearchOptions, node_id):
        """CLIP similarity (the paper's, worst frame) with a CLIP vision model, else the weight-free blend; wrapped
        so every scored candidate is sent to the canvas as a thumbnail with its score."""
        if clip_vision is not None:
            base = EmbeddingSimilarity(lambda x: clip_vision.encode_image(x.movedim(1, -1)).image_embeds, "min")
        else:
            base = weight_free_evaluator()
        return CandidatePreviews(base, options, node_id)


class CandidatePreviews:
    """Evaluator wrapper: scores with ``base`` and streams (thumbnail, score) of each candidate to the frontend."""

    def __init__(self, base, options: SearchOptions, node_id):
        self.base, self.options, self.node_id = base, options, node_id
        self.name = getattr(base, "name", type(base).__name__)
        self.chunk, self.items = 0, []

    def __call__(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        scores = self.base(frames, guide)
        per_chunk = {"search": self.options.candidates + 1, "brute_force": self.options.candidates, "naive": 1}
        final = self.options.mode != "brute_force" and len(self.items) == per_chunk[self.options.mode] - 1
        for i in range(frames.shape[0]):
            self.items.append({"image": thumbnail(frames[i, -1]), "score": float(scores[i]), "final": final})
        send_preview(self.node_id, {"chunk": self.chunk, "mode": self.options.mode, "candidates": self.items})
        if len(self.items) >= per_chunk[self.options.mode]:
            self.chunk, self.items = self.chunk + 1, []
        return scores


def thumbnail(frame: torch.Tensor) -> str:
    """``[3, H, W]`` in 0..1 -> a small JPEG as a data URL."""
    from PIL import Image

    scale = THUMBNAIL_SIZE / max(frame.shape[-2:])
    size = (max(1, round(frame.shape[-2] * scale)), max(1, round(frame.shape[-1] * scale)))
    small = torch.nn.functional.interpolate(frame[None].float(), size=size, mode="bilinear", antialias=True)[0]
    img = Image.fromarray((small.clamp(0, 1).movedim(0, -1).cpu().numpy() * 255).astype("uint8"))
    buf = bytes_io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def send_preview(node_id, data: dict) -> None:
    """Send a candidates message to the canvas (no-op outside a server, e.g. when called from Python)."""
    try:
        PromptServer = internal("server.PromptServer")
    except Exception:
        return
    if getattr(PromptServer, "instance", None) is not None:
        PromptServer.instance.send_sync(PREVIEW_EVENT, {"node": node_id, **data})


def zero_conditioning(model) -> list:
    """CONDITIONING of zeros with the model's text-context width (what ConditioningZeroOut gives): for running an
    image-to-video model with no prompt."""
    diffusion = model.model.diffusion_model
    for name in ("text_embedding", "caption_projection"):
        layer = getattr(diffusion, name, None)
        if layer is not None:
            first = next(m for m in layer.modules() if isinstance(m, torch.nn.Linear))
            return [[torch.zeros(1, 1, first.in_features), {}]]
    raise ValueError("positive: this model needs text conditioning; connect 'positive' and 'negative'")


NODES = [CascadeVI2VWan, CascadeVI2VSVD, CascadeVI2VLTXV, CascadeVSearchOptions, CascadeVChunkSampler]
