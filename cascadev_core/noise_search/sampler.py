"""Chunk-wise long-video sampling with k-step noise search: the entry point, :func:`sample_chunks`.

For each chunk: draw m initial noises; run each through a complete k-step schedule of the sampler (a
cheap preview); score the previews against the guide; run the full s-step schedule from the best noise;
its last frame guides the next chunk. The first guide is the user's image. ``"halving"`` spreads the same
preview budget over rungs of successive halving; ``"naive"`` and ``"brute_force"`` run through the same loop
for comparison (see :class:`~.options.SearchOptions` and :mod:`.rungs`).

The model plugs in as plain callables:

``sample(noise, guide, num_steps, on_eval[, seeds=...]) -> x``
    * ``noise``: ``[B, *noise_shape]`` standard normal (unscaled), one slice per candidate, on ``device``.
    * ``guide``: ``[1, C, H, W]`` in 0..1 on ``device``, shared by the B candidates.
    * ``num_steps``: length of the complete schedule to run: k for previews, a rung's length in halving, s
      for full runs (a preview is the sampler's own k-step schedule, not the first k steps of the s-step one).
    * ``on_eval()``: call it right before every model evaluation of the batch. It may raise
      :class:`~cascadev_core.progress.Interrupted`; let that propagate.
    * ``seeds``: passed (as a keyword) only when ``sample`` has a ``seeds`` parameter or ``**kwargs``: the
      B candidates' seeds, ``list[int]``, in the order of the noise slices; slice i is
      ``draw_noise(noise_shape, [seeds[i]])``. A candidate's previews, rungs and full run get the same seed
      and bitwise the same noise.
    * returns frames ``[B, T, C, H, W]`` in 0..1, or, when ``decode`` is given, whatever it decodes
      (e.g. a latent ``[B, ...]``).

    The result must be a deterministic function of each candidate's noise, independent of the other
    candidates in the batch: ancestral / SDE samplers must derive their per-step noise from the candidate's
    seed (the ``seeds`` argument), not from the batch; then batch size changes wall time only, never results.
``decode(x) -> frames``, optional
    ``x``: one candidate, ``[1, ...]`` sliced from ``sample``'s output; returns ``[1, T, C, H, W]`` in
    0..1. Called on one candidate at a time and reduced for scoring straight away, so previews never hold
    all candidates' full-resolution frames at once.
``evaluator(frames, guide) -> scores``
    ``frames`` ``[B, T', C, h, w]`` (after ``score_frames`` / ``score_size``), ``guide``
    ``[1, C, h, w]``; returns ``[B]``, higher is better. See :mod:`.evaluators`.

Costs: an *evaluation* is one model evaluation of one candidate; per chunk, with one evaluation per step,
search costs m·k + s (m·s when k >= s: the previews are full runs), halving at most m·k + s (exactly
:attr:`~.options.SearchOptions.evaluations_per_chunk`), naive s and brute force m·s. A *model call*
evaluates a whole batch: with batch size b, search makes ceil(m/b)·k + s calls per chunk and halving
sum(ceil(n_r/b)·l_r) + s over its rungs of n_r candidates and l_r steps, which is what wall time follows.
Both are measured and reported.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Sequence

import torch

from ..executor import Executor
from ..progress import Progress, StepCallback, StopHook
from .chunk_join import ChunkJoiner
from .chunk_runner import CandidateHook, ChunkRunner, DecodeFn, SampleFn
from .counting import EvalCounter
from .evaluators import Evaluator, evaluator_name
from .options import SearchOptions
from .result import ChunkRecord, NoiseSearchResult, PhaseClock

__all__ = ["CandidateHook", "DecodeFn", "SampleFn", "accepts_seeds", "sample_chunks"]


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
    on_candidate: CandidateHook | None = None,
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
        on_candidate: ``on_candidate(info)`` with a plain dict, for UIs (thumbnails, rung tables):

            * after every candidate run is scored (and after naive's run, unscored):
              ``{"event": "candidate", "chunk", "candidate" (index into the chunk's seeds), "seed", "phase"
              ("preview" in search, "rung" in halving, "full" for brute force and for the winner's full run),
              "rung" (index, None for the winner's full run), "steps", "score" (float, NaN when unscored),
              "frame" (the run's last frame [C, H, W] in 0..1, full resolution), "scored_frames" (the
              [T', C, h, w] the evaluator saw, or None)}``;
            * when a chunk is done: ``{"event": "chosen", "chunk", "chosen" (index), "seed", "score" (the
              chunk's final score, NaN when unscored), "steps" (s), "reused" (True when the winner's rung
              run was the full run), "evaluations", "frame" (the chunk's last frame as joined, i.e. colour
              corrected: the next chunk's guide, [C, H, W])}``.

            Tensors are views valid during the call: copy them to keep them.
        device, dtype: of the noise handed to ``sample`` (drawn in float32 on the CPU first); the guide is
            handed over on ``device`` too.
        output_device: where the joined video is kept (the CPU by default, so long videos stay off the GPU).
        executor: None samples here. An executor bound to a :class:`~cascadev_core.executor.SamplerSpec` (the same
            sampler, rebuilt in each worker) runs the candidate batches of a rung on different workers at once, same
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
    if on_candidate is not None and not callable(on_candidate):
        raise TypeError(f"on_candidate must be callable or None, got {type(on_candidate).__name__}")
    if options.color_correction > 0 and guide.shape[1] != 3:
        raise ValueError(f"color_correction works on RGB frames; the guide has {guide.shape[1]} channels")

    start = time.perf_counter()
    progress = Progress(options.num_chunks * options.evaluations_per_chunk, on_step, should_stop)
    progress.check()
    clock = PhaseClock(cuda=torch.device(device).type == "cuda")
    chunks = ChunkRunner(
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
        pass_seeds=accepts_seeds(sample),
        on_candidate=on_candidate,
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
        if on_candidate is not None:
            on_candidate(_chosen_event(record, options.steps, guide[0]))
    return NoiseSearchResult(
        frames=joiner.video(),
        chunks=records,
        options=options,
        evaluator=None if evaluator is None else evaluator_name(evaluator),
        times=clock.snapshot(),
        wall_time=time.perf_counter() - start,
    )


def accepts_seeds(sample: object) -> bool:
    """Whether ``sample`` can take ``seeds=...``: it has a ``seeds`` parameter (not positional-only) or
    ``**kwargs``. Callables without an inspectable signature are called the old way, without seeds."""
    try:
        parameters = inspect.signature(sample).parameters.values()
    except (TypeError, ValueError):
        return False
    for p in parameters:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return True
        if p.name == "seeds" and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            return True
    return False


def _chosen_event(record: ChunkRecord, steps: int, last_frame: torch.Tensor) -> dict:
    """The ``on_candidate`` event of a finished chunk (see :func:`sample_chunks`)."""
    return {
        "event": "chosen",
        "chunk": record.index,
        "chosen": record.chosen_index,
        "seed": record.chosen_seed,
        "score": math.nan if record.final_score is None else float(record.final_score),
        "steps": steps,
        "reused": record.full_run_reused,
        "evaluations": record.evaluations,
        "frame": last_frame,
    }


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
