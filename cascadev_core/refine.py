"""The CascadeV refine loop: effnet conditioning + noise -> refined SVD-VAE latents.

Official algorithm (``recon/refine_latent.py`` with ``PixArt.forward_with_dpmsolver``), reproduced exactly by the
defaults of :class:`RefineOptions`::

    z_ref = upsample_x4(cond_lowres) -> [B*T, 16, H, W] * 0.13025
    x = noise * sigma_max
    for each step i:  eps = windowed(cat([x / sqrt(sigma_i^2 + 1), z_ref], 1), t_i);  x = sampler_step(x, eps)
    return x -> [B, 4, T, H, W] / 0.13025

``windowed`` (:class:`WindowedDenoiser`) runs the model on temporal windows (``lats_per_vid`` frames, stride
``lats_per_vid // 2``, last window moved to ``T - L``, crossfaded in order) and, inside each window, on square
spatial tiles of ``input_size`` (step ``round(0.75 * input_size)``, row-major, overwrite). Options replace the
blending with overlap averaging / feathering, change window stride and tile overlap, pad too-small inputs, and
stack several (window, tile) jobs into one model call as extra videos (the DiT treats videos independently, so
batching changes the numbers only by kernel-level rounding).

Precision: the latents, eps, all blending and the scheduler are float32; only the model input is cast to
``model_dtype`` (e.g. fp16) and its output cast back, as in the official fp16 run.

Blending is done on the 4 eps channels only: the official code blends all 8 output channels and then keeps 0:4;
blending is elementwise per channel, so channels 0:4 are bitwise the same.

Progress: one unit per model call (``denoiser`` evaluation), NOT per sampler step. Total =
``steps * calls_per_step``, ``calls_per_step = ceil(B * windows * tiles / max_batch)``. ``should_stop`` is
polled before every call and raises :class:`~cascadev_core.progress.Interrupted`.

Executors: one evaluation's calls go to an executor (:mod:`~cascadev_core.executor`: in this process by default,
or Ray workers across GPUs and machines) and their results are blended here in call order, so the numbers are the
same whatever runs the calls (on CPU bitwise, at equal torch thread counts).

The DiT plugs in as ``denoiser(x [N, 4 + C, h, w], t [N], frames_per_video) -> [N, >= 4, h, w]`` with
``N = videos * frames_per_video``; channels 0:4 of the result are eps.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from . import schedulers as S
from .conditioning import SCALE_FACTOR, SR_SCALE, conditioning_frames, from_frames, model_input, to_frames
from .dit import CascadeDiT
from .executor import LOCAL, Executor
from .memory import max_batch_for_budget, model_precision
from .progress import Progress, StepCallback, StopHook
from .tiling import (
    BLEND_MODES,
    PAD_MODES,
    TILE_BLEND_MODES,
    Blender,
    crop_axis,
    official_tile_step,
    pad_axis,
    plan_tiles,
    plan_windows,
    step_from_overlap,
)

Denoiser = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class RefineOptions:
    """Sampler, windowing, tiling and batching options. The defaults are the official recipe.

    Attributes:
        sampler: ``"euler_a"`` (official), ``"ddim"`` (eta 0) or ``"dpmpp_2m"``.
        steps: number of sampler steps (official 8).
        window: temporal window in latent frames (default: the model's ``lats_per_vid``).
        window_stride: window step (default ``window // 2``).
        window_blend: ``"crossfade"`` (official) | ``"overwrite"`` | ``"average"`` | ``"feather"``.
        tile: spatial tile in latent pixels (default: the model's ``input_size``).
        tile_overlap: tile overlap in latent pixels (default ``tile - round(0.75 * tile)``, the official step).
        tile_blend: ``"overwrite"`` (official, row-major) | ``"average"`` | ``"feather"``.
        max_batch: (window, tile) jobs stacked into one model call, as extra videos (1 = official call pattern).
        memory_budget: bytes one model call may allocate; when set, it decides the batch instead of ``max_batch``
            (:func:`~cascadev_core.memory.max_batch_for_budget` with the model's config and dtypes, needs a
            ``CascadeDiT`` denoiser).
        pad: how inputs smaller than one window or tile are padded at the end of the short axis (the eps is
            cropped back): ``"replicate"`` / ``"reflect"``, or None: fewer frames than one window are still padded
            (replicate), frames smaller than one tile raise ValueError.
        model_dtype: dtype the model input is cast to (e.g. ``torch.float16`` for a plain fp16 callable); None
            passes float32. ``CascadeDiT`` casts its input to its own parameter dtype and returns the input
            dtype, so with it None already gives the official fp16-weights / fp32-state recipe.
    """

    sampler: str = "euler_a"
    steps: int = 8
    window: int | None = None
    window_stride: int | None = None
    window_blend: str = "crossfade"
    tile: int | None = None
    tile_overlap: int | None = None
    tile_blend: str = "overwrite"
    max_batch: int = 1
    pad: str | None = None
    model_dtype: torch.dtype | None = None
    memory_budget: int | None = None

    def validate(self) -> None:
        if self.sampler not in S.SAMPLERS:
            raise ValueError(f"sampler: expected one of {S.SAMPLERS}, got {self.sampler!r}")
        if self.steps < 1:
            raise ValueError(f"steps: expected >= 1, got {self.steps}")
        if self.window_blend not in BLEND_MODES:
            raise ValueError(f"window_blend: expected one of {BLEND_MODES}, got {self.window_blend!r}")
        if self.tile_blend not in TILE_BLEND_MODES:
            raise ValueError(f"tile_blend: expected one of {TILE_BLEND_MODES}, got {self.tile_blend!r}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch: expected >= 1, got {self.max_batch}")
        if self.memory_budget is not None and self.memory_budget <= 0:
            raise ValueError(f"memory_budget: expected None or > 0 bytes, got {self.memory_budget}")
        if self.pad is not None and self.pad not in PAD_MODES:
            raise ValueError(f"pad: expected None or one of {PAD_MODES}, got {self.pad!r}")


class WindowedDenoiser:
    """``forward_with_dpmsolver``: eps of a frame-major batch of videos through temporal windows and tiles.

    Args:
        denoiser: ``denoiser(x [n*L, Cin, S, S], t [n*L], L) -> [n*L, >=4, S, S]``.
        videos, frames, height, width: the batch the instance will be called on (``frames`` per video).
        window, window_stride, tile, tile_step: plan parameters (official: L, L//2, input_size, round(0.75*S)).
        window_blend, tile_blend, max_batch, pad, model_dtype: see :class:`RefineOptions`.
        progress: a :class:`Progress` advanced once per model call (optional).
        executor: runs the model calls (:mod:`~cascadev_core.executor`); None = in this process, one by one. The
            calls of one evaluation go to it together and their results are blended here, in call order, so any
            executor gives the same numbers.

    ``__call__(x [videos*frames, Cin, H, W], t 0-dim or [videos*frames]) -> eps [videos*frames, 4, H, W]`` float32.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        videos: int,
        frames: int,
        height: int,
        width: int,
        window: int,
        tile: int,
        window_stride: int | None = None,
        tile_step: int | None = None,
        window_blend: str = "crossfade",
        tile_blend: str = "overwrite",
        max_batch: int = 1,
        pad: str | None = None,
        model_dtype: torch.dtype | None = None,
        progress: Progress | None = None,
        executor: Executor | None = None,
    ):
        self.denoiser = denoiser
        self.executor = executor or LOCAL
        self.videos, self.frames, self.height, self.width = videos, frames, height, width
        self.pad = pad
        # padded sizes the model sees: fewer frames than one window are always padded (replicating the last frame)
        # and trimmed back; too-small frames only with an explicit pad (else the planners raise)
        self.pframes = max(frames, window)
        self.pheight = max(height, tile) if pad else height
        self.pwidth = max(width, tile) if pad else width
        self.window = window
        self.windows = plan_windows(self.pframes, window, window_stride, window_blend)
        self.tiles = plan_tiles(self.pheight, self.pwidth, tile, tile_step, tile_blend)
        self.window_blend, self.tile_blend = window_blend, tile_blend
        self.max_batch = max_batch
        self.model_dtype = model_dtype
        self.progress = progress
        self.jobs = [(b, w, k) for b in range(videos) for w in range(len(self.windows)) for k in range(len(self.tiles))]

    @property
    def calls(self) -> int:
        """Model calls per evaluation: ``ceil(videos * windows * tiles / max_batch)``."""
        return math.ceil(len(self.jobs) / self.max_batch)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_axis(x, 1, self.pframes, self.pad or "replicate")
        if not self.pad:
            return x
        x = pad_axis(x, 3, self.pheight, self.pad)
        return pad_axis(x, 4, self.pwidth, self.pad)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n, cin, h, w = x.shape
        if (n, h, w) != (self.videos * self.frames, self.height, self.width):
            raise ValueError(
                f"x: expected [{self.videos * self.frames}, C, {self.height}, {self.width}], got {tuple(x.shape)}"
            )
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).reshape(-1)
        if t.numel() not in (1, n):
            raise ValueError(f"t: expected a scalar or {n} values, got {t.numel()}")
        if t.numel() == n and not torch.all(t == t[0]):
            raise ValueError("t: every frame must carry the same timestep")
        t0 = t[:1]
        xv = self._pad(x.reshape(self.videos, self.frames, cin, h, w))
        L, F_, H, W = self.window, self.pframes, self.pheight, self.pwidth
        eps = torch.zeros(self.videos, F_, 4, H, W, dtype=torch.float32, device=x.device)
        vid_blend = [Blender(eps[b], self.window_blend) for b in range(self.videos)]
        win_blend: dict[tuple[int, int], Blender] = {}
        done_tiles: dict[tuple[int, int], int] = {}
        chunks = [self.jobs[c0 : c0 + self.max_batch] for c0 in range(0, len(self.jobs), self.max_batch)]
        shapes: deque[torch.Size] = deque()

        def calls():
            """Each chunk's model input ``[len(chunk) * L, Cin, S, S]``, built when the executor asks for it."""
            for chunk in chunks:
                inp = torch.cat(
                    [
                        xv[b, self.windows[wi].slice][..., self.tiles[k].rows.slice, self.tiles[k].cols.slice]
                        for b, wi, k in chunk
                    ]
                )
                if self.model_dtype is not None:
                    inp = inp.to(self.model_dtype)
                shapes.append(inp.shape)
                yield inp, t0.expand(inp.shape[0]), L

        for chunk, out in zip(chunks, self.executor.map(self.denoiser, calls(), self.progress)):
            shape = shapes.popleft()
            if out.ndim != 4 or out.shape[0] != shape[0] or out.shape[1] < 4 or out.shape[2:] != shape[2:]:
                raise ValueError(f"denoiser output: expected [{shape[0]}, >=4, ...], got {tuple(out.shape)}")
            out = out[:, :4].float().to(x.device)
            for j, (b, wi, k) in enumerate(chunk):
                key = (b, wi)
                if key not in win_blend:
                    win_blend[key] = Blender(
                        torch.zeros(L, 4, H, W, dtype=torch.float32, device=x.device), self.tile_blend
                    )
                    done_tiles[key] = 0
                tile = self.tiles[k]
                win_blend[key].add(tile.index, out[j * L : (j + 1) * L], tile.weight)
                done_tiles[key] += 1
                if done_tiles[key] == len(self.tiles):
                    win = self.windows[wi]
                    wt = None if win.weight is None else win.weight.view(-1, 1, 1, 1)
                    vid_blend[b].add((win.slice,), win_blend.pop(key).result(), wt)
        for bl in vid_blend:
            bl.result()
        eps = crop_axis(crop_axis(crop_axis(eps, 1, self.frames), 3, self.height), 4, self.width)
        return eps.reshape(n, 4, h, w)


def _as_noise_fn(step_noises, shape: tuple[int, ...]):
    if step_noises is None or callable(step_noises):
        return step_noises
    frames = []
    for i, s in enumerate(step_noises):
        if tuple(s.shape) != shape:
            raise ValueError(f"step_noises[{i}]: expected [B, 4, T, H, W] = {list(shape)}, got {list(s.shape)}")
        frames.append(to_frames(s.float()))
    return S.replay_noise(frames)


def windowed_denoiser(
    denoiser: Denoiser,
    options: RefineOptions,
    videos: int,
    frames: int,
    height: int,
    width: int,
    lats_per_vid: int,
    input_size: int,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> WindowedDenoiser:
    """The one place :class:`RefineOptions` become a :class:`WindowedDenoiser` (the refine loop and ComfyUI's
    native sampling both call it, so no option is honoured on one path and dropped on the other).

    Args:
        denoiser: the DiT or any ``denoiser(x, t, frames_per_video)``.
        options: windows, tiles, blending, batching (``memory_budget`` picks the batch), padding, model dtype.
        videos, frames, height, width: the batch the denoiser will be called on (latent frames and pixels).
        lats_per_vid, input_size: the model's own window and tile (used where the options leave them unset).
        progress: advanced once per model call.
        executor: where the model calls run (None = in this process; see :mod:`~cascadev_core.executor`).
    """
    window = options.window or lats_per_vid
    tile = options.tile or input_size
    tile_step = step_from_overlap(tile, options.tile_overlap, official_tile_step(tile), "tile")
    model = WindowedDenoiser(
        denoiser, videos, frames, height, width, window, tile, options.window_stride, tile_step,
        options.window_blend, options.tile_blend, options.max_batch, options.pad, options.model_dtype, progress,
        executor,
    )  # fmt: skip
    if options.memory_budget is not None:
        model.max_batch = _budget_batch(denoiser, options, window, tile, len(model.jobs))
    return model


def _budget_batch(denoiser, opts: RefineOptions, window: int, tile: int, jobs: int) -> int:
    """Jobs per model call that fit ``opts.memory_budget`` (estimated from the DiT's sizes and dtypes)."""
    if not isinstance(denoiser, CascadeDiT):
        raise ValueError("memory_budget: needs a CascadeDiT denoiser (its sizes give the estimate); set max_batch")
    return max_batch_for_budget(denoiser.config, window, tile, opts.memory_budget, jobs, model_precision(denoiser))


def refine(
    denoiser: Denoiser,
    cond_lowres: torch.Tensor,
    *,
    lats_per_vid: int = 8,
    input_size: int = 128,
    options: RefineOptions | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    step_noises: Sequence[torch.Tensor] | S.NoiseFn | None = None,
    scale_factor: float = SCALE_FACTOR,
    sr_scale: int = SR_SCALE,
    on_step: StepCallback | None = None,
    should_stop: StopHook | None = None,
    callback: Callable[[dict], None] | None = None,
    executor: Executor | None = None,
    **overrides,
) -> torch.Tensor:
    """Refine effnet latents into SVD-VAE latents (the official ``refine_latent.py`` pipeline).

    Args:
        denoiser: the DiT (``CascadeDiT``) or any ``denoiser(x [N, 4+C, h, w], t [N], frames_per_video)``.
        cond_lowres: ``[B, C, T, h, w]`` conditioning latents (effnet: C = 16, h = H/4); its device is used.
        lats_per_vid, input_size: the model's temporal window and spatial tile (defaults for the options).
        options: :class:`RefineOptions`; keyword ``overrides`` (e.g. ``sampler="ddim"``) replace its fields.
        noise: initial noise ``[B, 4, T, sr*h, sr*w]``; default drawn from the generator as
            ``torch.randn(B*T, 4, H, W)`` frame-major (for B = 1 exactly the official ``torch.randn(T, 4, H, W)``).
        generator: ``torch.Generator`` for the initial and ancestral noises (used in that order; default a CPU
            generator seeded with ``seed``, and seed 0 when both are None - runs are reproducible by default).
        step_noises: Euler-ancestral noises to replay, ``[B, 4, T, H, W]`` per step, or a
            ``noise(i, like [B*T, 4, H, W])`` callable.
        scale_factor, sr_scale: 0.13025 and 4 in the released model.
        on_step, should_stop: progress hooks, one unit per model call (see module doc).
        callback: called after every step with ``i, timestep, sigma, x, eps, denoised`` (frame-major
            ``[B*T, 4, H, W]``, latents still times ``scale_factor``).
        executor: where the model calls run: None = here, one by one; a
            :class:`~cascadev_core.ray_executor.RayExecutor` runs each step's calls on its workers (same numbers).

    Returns:
        ``[B, 4, T, H, W]`` float32 latents divided by ``scale_factor`` (ready for the SVD temporal VAE decoder).
    """
    opts = replace(options or RefineOptions(), **overrides)
    opts.validate()
    if cond_lowres.ndim != 5:
        raise ValueError(f"cond_lowres: expected [B, C, T, h, w], got shape {tuple(cond_lowres.shape)}")
    b, _, t, h, w = cond_lowres.shape
    H, W = h * sr_scale, w * sr_scale
    device = cond_lowres.device
    shape = (b, 4, t, H, W)

    if noise is not None and tuple(noise.shape) != shape:
        raise ValueError(f"noise: expected [B, 4, T, H, W] = {list(shape)}, got {list(noise.shape)}")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)

    progress = Progress(0, on_step, should_stop)
    model = windowed_denoiser(denoiser, opts, b, t, H, W, lats_per_vid, input_size, progress, executor)
    progress.total = opts.steps * model.calls

    z_ref = conditioning_frames(cond_lowres, sr_scale, scale_factor)  # [B*T, C, H, W]
    if noise is None:
        z = torch.randn((b * t, 4, H, W), generator=generator, device=generator.device).to(device)
    else:
        z = to_frames(noise.to(device=device, dtype=torch.float32))
    noise_fn = _as_noise_fn(step_noises, shape) or S.generator_noise(generator)

    def eps_fn(x_in: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return model(model_input(x_in, z_ref), timestep)

    schedule = S.official_schedule(opts.steps)
    x = z * schedule.init_noise_sigma.to(device)
    x = S.sample(opts.sampler, eps_fn, x, schedule, noise=noise_fn, callback=callback)
    return from_frames(x, b) / scale_factor
