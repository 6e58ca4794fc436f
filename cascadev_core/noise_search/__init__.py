"""k-step noise-search chunk sampling for long image-to-video, in plain torch (no ComfyUI).

Entry point: :func:`sample_chunks` (see :mod:`.sampler` for the ``sample`` / ``decode`` / evaluator contract).
Modules, one job each: :mod:`.options` (validated knobs), :mod:`.seeds` (per-candidate seeds and noise),
:mod:`.counting` (evaluation counting, progress, cancellation), :mod:`.evaluators` (scores against the guide),
:mod:`.scoring` (frame subset / downscale before scoring), :mod:`.rungs` (which candidates run how many steps),
:mod:`.chunk_runner` (one chunk: rungs, full run, events), :mod:`.chunk_join` (joining and colour correction),
:mod:`.result` (the result and its report), :mod:`.testbed` (a known-answer model for tests and the bench).
"""

from .chunk_join import ChunkJoiner, chunk_lab_statistics, match_color
from .evaluators import (
    ColorDrift,
    EmbeddingSimilarity,
    Evaluator,
    Flicker,
    FrameEvaluator,
    SSIMToGuide,
    WeightedSum,
    weight_free_evaluator,
)
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
    "draw_noise",
    "halving_rungs",
    "match_color",
    "sample_chunks",
    "weight_free_evaluator",
]
