"""CascadeV Noise Search Options: how each chunk picks its noise. Defaults are the core's
(:class:`cascadev_core.noise_search.SearchOptions`), the one set the node, the sampler and the library share."""

from __future__ import annotations

from dataclasses import fields

from ..cascadev_core.noise_search import SearchOptions
from ..cascadev_core.noise_search.options import MODES
from .comfyui import io
from .validation import Choice

SearchOptionsType = io.Custom("CASCADEV_SEARCH_OPTIONS")
DEFAULTS = {f.name: f.default for f in fields(SearchOptions)}
#: the SearchOptions fields this node sets (the chunk sampler sets chunks, steps, seed and evals_per_step)
NODE_FIELDS = ("mode", "num_candidates", "preview_steps", "batch_size", "color_correction", "keep_guide_frame",
               "score_frames", "score_size")  # fmt: skip


def search_settings(search_options: dict | None) -> dict:
    """The core's defaults for this node's fields, updated with what an options node chose (a plain dict)."""
    return {**{k: DEFAULTS[k] for k in NODE_FIELDS}, **(search_options or {})}


class CascadeVSearchOptions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVSearchOptions",
            display_name="CascadeV Noise Search Options",
            category="CascadeV/chunk sampler",
            description="How each chunk picks its noise: search (m noises previewed with k steps, the best one "
            "fully denoised: m*k+s evaluations), halving (the same m*k preview budget over rungs that keep the "
            "better half and preview the survivors longer), naive (one noise: s) or brute_force (m full runs: m*s).",
            inputs=[
                Choice("mode", options=list(MODES), default=DEFAULTS["mode"], tooltip=", ".join(MODES) + "."),
                io.Int.Input(
                    "candidates", default=DEFAULTS["num_candidates"], min=1, max=64, tooltip="Noises per chunk (m)."
                ),
                io.Int.Input(
                    "preview_steps",
                    default=DEFAULTS["preview_steps"],
                    min=1,
                    max=200,
                    tooltip="Steps of the preview schedule (k); more than the sampler's steps runs full-length "
                    "previews (noted in the report).",
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
                    default=DEFAULTS["color_correction"],
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Pull each chunk's colours toward the first chunk's (0 = off).",
                ),
                io.Boolean.Input(
                    "keep_guide_frame",
                    default=DEFAULTS["keep_guide_frame"],
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
                    default=DEFAULTS["score_size"] or 0,
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
            return f"expected 0 (full size) or at least 8, got {score_size}"
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
            )
        )


NODES = [CascadeVSearchOptions]
