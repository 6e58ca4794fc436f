"""The evaluator a run uses: the paper's CLIP similarity when an image embedder is at hand, else a weight-free one
that keeps motion. One place for the default, so the node and the library agree."""

from __future__ import annotations

from .evaluators import EmbeddingSimilarity, EmbedFn, Evaluator
from .faithful_motion import FaithfulMotion


def weight_free_evaluator(**options) -> FaithfulMotion:
    """The model-free default: :class:`~.faithful_motion.FaithfulMotion` (faithful to the guide's content and
    colours, coherent in time, moving); ``options`` are its keyword arguments."""
    return FaithfulMotion(**options)


def default_evaluator(embed: EmbedFn | None = None) -> Evaluator:
    """``EmbeddingSimilarity(embed, "min")`` (the paper: the worst frame's cosine similarity to the guide) when
    ``embed`` (images ``[N, C, H, W]`` in 0..1 -> ``[N, D]``, e.g. a CLIP vision encoder) is given, else
    :func:`weight_free_evaluator`."""
    if embed is None:
        return weight_free_evaluator()
    if not callable(embed):
        raise TypeError(f"embed must be callable or None, got {type(embed).__name__}")
    return EmbeddingSimilarity(embed, reduction="min")
