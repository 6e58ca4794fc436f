"""k-step noise-search chunk sampling for long image-to-video, in plain torch (no ComfyUI).

Entry point: :func:`sample_chunks` (see :mod:`.sampler` for the ``sample`` / ``decode`` / evaluator contract).
Modules, one job each: :mod:`.options` (validated knobs), :mod:`.seeds` (per-candidate seeds and noise),
:mod:`.counting` (evaluation counting, progress, cancellation), :mod:`.evaluators` (scores against the guide),
:mod:`.faithful_motion` (the weight-free evaluator that keeps motion), :mod:`.defaults` (which evaluator by default),
:mod:`.scoring` (frame subset / downscale before scoring), :mod:`.rungs` (which candidates run how many steps),
:mod:`.chunk_runner` (one chunk: rungs, full run, events), :mod:`.chunk_join` (joining and colour correction),
:mod:`.result` (the result and its report), :mod:`.testbed` (a known-answer model for tests and the bench).
"""

from .chunk_join import ChunkJoiner, chunk_lab_statistics, match_color
from .defaults import default_evaluator, weight_free_evaluator
from .evaluators import (
    ColorDrift,
    EmbeddingSimilarity,
    Evaluator,
    Flicker,
    FrameEvaluator,
    SSIMToGuide,
    WeightedSum,
    ssim_blend_evaluator,
)
from .faithful_motion import FaithfulMotion
from .options import MODES, SearchOptions
from .result import ChunkRecord, NoiseSearchResult
from .rungs import Rung, halving_rungs
from .sampler import CandidateHook, DecodeFn, SampleFn, accepts_seeds, sample_chunks
from .seeds import candidate_seed, candidate_seeds, draw_noise

__all__ = [
    "MODES",
    "CandidateHook",
    "ChunkJoiner",
    "ChunkRecord",
    "ColorDrift",
    "DecodeFn",
    "EmbeddingSimilarity",
    "Evaluator",
    "FaithfulMotion",
    "Flicker",
    "FrameEvaluator",
    "NoiseSearchResult",
    "Rung",
    "SSIMToGuide",
    "SampleFn",
    "SearchOptions",
    "WeightedSum",
    "accepts_seeds",
    "candidate_seed",
    "candidate_seeds",
    "chunk_lab_statistics",
    "default_evaluator",
    "draw_noise",
    "halving_rungs",
    "match_color",
    "sample_chunks",
    "ssim_blend_evaluator",
    "weight_free_evaluator",
]
