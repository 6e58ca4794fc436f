"""Chunk-wise long-video sampling with k-step noise search: the entry point, :func:`sample_chunks`.

For each chunk: draw m initial noises; run each through a complete k-step schedule of the sampler (a
cheap preview); score the previews against the guide; run the full s-step schedule from the best noise;
its last frame guides the next chunk. The first guide is the user's image. ``"naive"`` and
``"brute_force"`` modes run through the same loop for comparison (see :class:`~.options.SearchOptions`).

The model plugs in as plain callables:

``sample(noise, guide, num_steps, on_eval) -> x``
    * ``noise``: ``[B, *noise_shape]`` standard normal (unscaled), one slice per candidate, on ``device``.
    * ``guide``: ``[1, C, H, W]`` in 0..1 on ``device``, shared by the B candidates.
    * ``num_steps``: length of the complete schedule to run: k for previews, s for full runs (a preview
      is the sampler's own k-step schedule, not the first k steps of the s-step one).
    * ``on_eval()``: call it right before every model evaluation of the batch. It may raise
      :class:`~cascadev_core.progress.Interrupted`; let that propagate.
    * returns frames ``[B, T, C, H, W]`` in 0..1, or, when ``decode`` is given, whatever it decodes
      (e.g. a latent ``[B, ...]``).

    The result must be a deterministic function of each candidate's noise, independent of the other
    candidates in the batch (ancestral / SDE samplers must derive their per-step noise from the candidate,
    not from the batch); then batch size changes wall time only, never results.
``decode(x) -> frames``, optional
    ``x``: one candidate, ``[1, ...]`` sliced from ``sample``'s output; returns ``[1, T, C, H, W]`` in
    0..1. Called on one candidate at a time and reduced for scoring straight away, so previews never hold
    all candidates' full-resolution frames at once.
``evaluator(frames, guide) -> scores``
    ``frames`` ``[B, T', C, h, w]`` (after ``score_frames`` / ``score_size``), ``guide``
    ``[1, C, h, w]``; returns ``[B]``, higher is better. See :mod:`.evaluators`.

Costs: an *evaluation* is one model evaluation of one candidate; per chunk, with one evaluation per step,
search costs m·k + s, naive s and brute force m·s. A *model call* evaluates a whole batch: with batch size
b, search makes ceil(m/b)·k + s calls per chunk, which is what wall time follows. Both are measured and
reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ..executor import Executor, sample_batches
from ..progress import Progress, StepCallback, StopHook
from .chunk_join import ChunkJoiner
from .counting import EvalCounter
from .evaluators import Evaluator, evaluator_name
from .options import SearchOptions
from .result import ChunkRecord, NoiseSearchResult, PhaseClock
from .scoring import best_index, evaluate, prepare_frames, shrink_images
from .seeds import candidate_seeds, draw_noise

SampleFn = Callable[[torch.Tensor, torch.Tensor, int, Callable[[], None]], torch.Tensor]
DecodeFn = Callable[[torch.Tensor], torch.Tensor]


def sample_chunks(
    sample: SampleFn,
    guide: torch.Tensor,
    noise_shape: Sequence[int],
    options: SearchOptions | None = None,
    *,
    evaluator: Evaluator | None = None,
    decode: DecodeFn | None = None,
    on_step: StepCallback | None = None,
    should_stop: StopHook | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    output_device: torch.device | str = "cpu",
    executor: Executor | None = None,
) -> NoiseSearchResult:
    """Generate ``options.num_chunks`` chunks, each guided by the previous chunk's last frame.

    Args:
        sample: the model's sampler, ``sample(noise [B, *noise_shape], guide [1, C, H, W], num_steps, on_eval)
            -> [B, T, C, H, W]`` (or decodable output); see the module docstring for its contract.
        guide: the user's image, ``[C, H, W]`` or ``[1, C, H, W]``, values in 0..1, the size of the model's
            frames.
        noise_shape: shape of one candidate's initial noise, no batch dimension (e.g. ``[T, C, h, w]``).
        options: mode, n, m, k, s, seed, batch size, joining and scoring options; defaults if None.
        evaluator: ``score(frames [B, T, C, H, W], guide [1, C, H, W]) -> [B]``, higher is better. Required by
            ``"search"`` and ``"brute_force"``; in ``"naive"`` mode it only fills the reported final scores.
        decode: optional ``decode(x [1, ...]) -> [1, T, C, H, W]`` applied to one candidate at a time.
        on_step: ``on_step(done, total)`` after every batched model call, counted in per-candidate
            evaluations.
        should_stop: polled before every model call; True raises :class:`~cascadev_core.progress.Interrupted`
            and nothing is returned.
        device, dtype: of the noise handed to ``sample`` (drawn in float32 on the CPU first); the guide is
            handed over on ``device`` too.
        output_device: where the joined video is kept (the CPU by default, so long videos stay off the GPU).
        executor: None samples here. An executor bound to a :class:`~cascadev_core.executor.SamplerSpec` (the same
            sampler, rebuilt in each worker) runs a chunk's candidate batches on different workers at once, same
            results; stops are then honoured between batches (:func:`~cascadev_core.executor.sample_batches`).

    Returns:
        :class:`NoiseSearchResult` with the video ``[N, C, H, W]`` (N = n·T, minus n-1 repeated guide frames
        unless ``keep_guide_frame``), per-chunk scores, chosen seeds, evaluation counts and time per phase.

    Raises:
        ValueError / TypeError naming the argument at fault (``guide``, ``noise_shape``, ``evaluator``,
        ``sample``, ``decode``, or the option). A guide whose size differs from the model's frames is
        detected on the first frames the model returns.
        Interrupted: ``should_stop()`` returned True.
    """
    options = SearchOptions() if options is None else options
    if not isinstance(options, SearchOptions):
        raise TypeError(f"options must be a SearchOptions, got {type(options).__name__}")
    guide = _as_guide(guide).to(device)
    noise_shape = _as_noise_shape(noise_shape)
    if not callable(sample):
        raise TypeError(f"sample must be callable, got {type(sample).__name__}")
    if decode is not None and not callable(decode):
        raise TypeError(f"decode must be callable or None, got {type(decode).__name__}")
    if evaluator is None and options.mode != "naive":
        raise ValueError(f"evaluator is required in mode {options.mode!r} (it picks the best candidate)")
    if evaluator is not None and not callable(evaluator):
        raise TypeError(f"evaluator must be callable, got {type(evaluator).__name__}")
    if options.color_correction > 0 and guide.shape[1] != 3:
        raise ValueError(f"color_correction works on RGB frames; the guide has {guide.shape[1]} channels")

    start = time.perf_counter()
    progress = Progress(options.num_chunks * options.evaluations_per_chunk, on_step, should_stop)
    progress.check()
    clock = PhaseClock(cuda=torch.device(device).type == "cuda")
    chunks = _ChunkSampler(
        sample=sample,
        decode=decode,
        evaluator=evaluator,
        options=options,
        noise_shape=noise_shape,
        frame_shape=guide.shape[1:],
        device=device,
        dtype=dtype,
        counter=EvalCounter(progress),
        clock=clock,
        executor=executor,
    )
    keep, strength = options.keep_guide_frame, options.color_correction
    joiner = ChunkJoiner(options.num_chunks, keep, strength, output_device)
    records = []
    for index in range(options.num_chunks):
        record, frames = chunks.run(index, guide)
        joined_before = clock.totals["join"]
        with clock.measure("join"):
            guide = joiner.add(frames).to(device)
        record.times["join"] = clock.totals["join"] - joined_before
        records.append(record)
    return NoiseSearchResult(
        frames=joiner.video(),
        chunks=records,
        options=options,
        evaluator=None if evaluator is None else evaluator_name(evaluator),
        times=clock.snapshot(),
        wall_time=time.perf_counter() - start,
    )


@dataclass
class _ChunkSampler:
    """Runs one chunk in the configured mode; holds the callables, the counter and the clock."""

    sample: SampleFn
    decode: DecodeFn | None
    evaluator: Evaluator | None
    options: SearchOptions
    noise_shape: tuple[int, ...]
    frame_shape: torch.Size  # [C, H, W] of the user's guide, which the model's frames must match
    device: torch.device | str
    dtype: torch.dtype
    counter: EvalCounter
    clock: PhaseClock
    executor: Executor | None = None

    def run(self, index: int, guide: torch.Tensor) -> tuple[ChunkRecord, torch.Tensor]:
        """Chunk ``index`` from ``guide [1, C, H, W]``: its record and its frames ``[T, C, H, W]``."""
        o = self.options
        evals, calls, times = self.counter.evaluations, self.counter.model_calls, self.clock.snapshot()
        seeds = candidate_seeds(o.seed, index, o.candidates)
        score_guide = None if self.evaluator is None else shrink_images(guide, o.score_size)
        if o.mode == "search":
            k = o.preview_steps
            scores, _ = self._run_candidates(seeds, guide, score_guide, k, "preview", keep_best=False)
            chosen = best_index(scores)
            frames = self._frames(self._sample(seeds[chosen : chosen + 1], guide, o.steps, "full"))
            final = self._score(frames, score_guide)
        elif o.mode == "brute_force":
            scores, frames = self._run_candidates(seeds, guide, score_guide, o.steps, "full", keep_best=True)
            chosen = best_index(scores)
            final = scores[chosen]
        else:
            scores, chosen = [], 0
            frames = self._frames(self._sample(seeds, guide, o.steps, "full"))
            final = None if self.evaluator is None else self._score(frames, score_guide)
        record = ChunkRecord(
            index=index,
            candidate_seeds=seeds,
            candidate_scores=scores,
            chosen_index=chosen,
            chosen_seed=seeds[chosen],
            final_score=final,
            evaluations=self.counter.evaluations - evals,
            model_calls=self.counter.model_calls - calls,
            times=self.clock.since(times),
        )
        return record, frames[0]

    def _run_candidates(
        self,
        seeds: list[int],
        guide: torch.Tensor,
        score_guide: torch.Tensor,
        num_steps: int,
        phase: str,
        keep_best: bool,
    ) -> tuple[list[float], torch.Tensor | None]:
        """Sample the candidates in batches and score each; with ``keep_best``, also return the best one's
        frames ``[1, T, C, H, W]`` (the only full-resolution frames kept)."""
        batch = self.options.batch_size or len(seeds)
        scores: list[float] = []
        best, best_score = None, -math.inf
        batches = [seeds[first : first + batch] for first in range(0, len(seeds), batch)]
        for x in self._sample_batches(batches, guide, num_steps, phase):
            for i in range(x.shape[0]):
                frames = self._frames(x[i : i + 1])
                score = self._score(frames, score_guide)
                scores.append(score)
                clean = -math.inf if math.isnan(score) else score
                if keep_best and (best is None or clean > best_score):
                    # A slice of the sampler's batch would keep the whole batch alive: copy it.
                    best, best_score = (frames.clone() if self.decode is None else frames), clean
            del x
        return scores, best

    def _sample_batches(
        self, batches: list[list[int]], guide: torch.Tensor, num_steps: int, phase: str
    ) -> Iterator[torch.Tensor]:
        """Sampler outputs ``[len(seeds), ...]`` of candidate batches, in order; the one place candidate batches are
        dispatched: here one after another, or all at once through the executor."""
        if self.executor is None:
            for seeds in batches:
                yield self._sample(seeds, guide, num_steps, phase)
            return
        noises = (draw_noise(self.noise_shape, seeds, dtype=self.dtype) for seeds in batches)
        sizes = [len(seeds) for seeds in batches]
        runs = sample_batches(self.executor, self.sample, noises, sizes, guide, num_steps, self.counter)
        for _ in batches:
            with self.clock.measure(phase):
                x = next(runs)
            yield x

    def _sample(self, seeds: list[int], guide: torch.Tensor, num_steps: int, phase: str) -> torch.Tensor:
        """One sampler call on the candidates of ``seeds``; returns its output ``[len(seeds), ...]``."""
        noise = draw_noise(self.noise_shape, seeds, device=self.device, dtype=self.dtype)
        with self.clock.measure(phase), self.counter.run(len(seeds)):
            x = self.sample(noise, guide, num_steps, self.counter)
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] != len(seeds):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"sample must return one result per noise, batch {len(seeds)}, got {got}")
        return x

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        """Frames ``[1, T, C, H, W]`` of one candidate's sampler output ``x [1, ...]``, decoded if needed."""
        if self.decode is None:
            frames, source = x, "sample"
        else:
            with self.clock.measure("decode"):
                frames, source = self.decode(x), "decode"
        if not isinstance(frames, torch.Tensor) or frames.ndim != 5 or frames.shape[0] != 1:
            got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"{source} must return frames [B, T, C, H, W] (here B=1), got {got}")
        if frames.shape[2:] != self.frame_shape:
            raise ValueError(
                f"guide has shape [C, H, W] = {list(self.frame_shape)} but the model makes frames of "
                f"{list(frames.shape[2:])}: resize the guide to the model's frame size (or fix noise_shape)"
            )
        return frames

    def _score(self, frames: torch.Tensor, score_guide: torch.Tensor) -> float:
        """Evaluator score of one candidate's frames ``[1, T, C, H, W]``."""
        o = self.options
        with self.clock.measure("score"):
            reduced = prepare_frames(frames, o.score_frames, o.score_size)
            return evaluate(self.evaluator, reduced, score_guide.to(reduced.device))[0]


def _as_guide(guide: torch.Tensor) -> torch.Tensor:
    """The user's guide as ``[1, C, H, W]``; ValueError naming ``guide`` if it is not an image in 0..1."""
    if not isinstance(guide, torch.Tensor):
        raise TypeError(f"guide must be a torch.Tensor [C, H, W] or [1, C, H, W], got {type(guide).__name__}")
    if guide.ndim == 3:
        guide = guide.unsqueeze(0)
    if guide.ndim != 4 or guide.shape[0] != 1:
        raise ValueError(f"guide must be one image, [C, H, W] or [1, C, H, W], got {tuple(guide.shape)}")
    if not guide.is_floating_point():
        raise ValueError(f"guide must be a float image in 0..1, got dtype {guide.dtype}")
    if guide.numel() == 0 or not bool(torch.isfinite(guide).all()):
        raise ValueError("guide must be a non-empty image of finite values")
    lo, hi = float(guide.min()), float(guide.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"guide values must be in 0..1 (an IMAGE, not a latent), got {lo:.3g}..{hi:.3g}")
    return guide


def _as_noise_shape(noise_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(noise_shape)
    except TypeError:
        raise TypeError(f"noise_shape must be a sequence of ints, got {type(noise_shape).__name__}") from None
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"noise_shape must be positive ints (one candidate, no batch dim), got {shape}")
    return shape
