"""The knobs of one chunk-wise run, validated once so every error names the argument to fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .rungs import Rung, halving_rungs, schedule_evaluations

MODES = ("search", "naive", "brute_force", "halving")


@dataclass(frozen=True)
class SearchOptions:
    """How to sample a long video chunk by chunk.

    Args:
        mode: ``"search"`` (k-step previews of m noises, then one full run of the best: m·k + s
            evaluations per chunk), ``"halving"`` (the same m·k preview budget spread over rungs of successive
            halving, each rung previewing the better half with a longer schedule, then one full run of the
            winner: at most m·k + s; see :func:`~.rungs.halving_rungs`), ``"naive"`` (one full run from
            candidate 0's noise: s) or ``"brute_force"`` (m full runs, keep the best: m·s). A preview or rung
            of s steps is a full run and is reused rather than run again (search with k >= s costs m·s).
        num_chunks: chunks to generate (n >= 1); the last frame of each chunk guides the next.
        num_candidates: initial noises per chunk (m >= 1). Ignored by ``"naive"``.
        preview_steps: steps of the cheap preview schedule (k >= 1). Used by ``"search"`` and ``"halving"``.
            A k above s is run as s (a graph with a 2- or 4-step distilled schedule still runs) and noted in
            :attr:`notes` and the report.
        steps: steps of the full schedule (s >= 1).
        seed: base seed; every candidate of every chunk derives its own seed from it (see
            :func:`~.seeds.candidate_seed`; chunk 0's candidate 0 uses it as is).
        batch_size: candidates per sampler call (the memory budget); None runs all m together.
        keep_guide_frame: keep frame 0 of chunks 2..n. Image-to-video models return the guide as frame 0, so
            by default it is dropped there, because it repeats the previous chunk's last frame.
        color_correction: 0..1, strength of the per-channel Lab mean/std match of chunks 2..n toward chunk
            1's colour statistics (0 = off). The corrected last frame is what guides the next chunk.
        score_frames: score previews on this many evenly spaced frames (the last frame always among them);
            None scores every frame.
        score_size: downscale frames (antialiased) so their longer side is at most this before scoring
            (default 224, CLIP's input size; the weight-free evaluator works at 32 pixels); None scores at full
            resolution.
        evals_per_step: model evaluations the sampler makes per step (2 for Heun-type samplers). Only sizes
            the progress total; counts reported in the result are measured, not assumed.
    """

    mode: str = "search"
    num_chunks: int = 1
    num_candidates: int = 4
    preview_steps: int = 8
    steps: int = 25
    seed: int = 0
    batch_size: int | None = None
    keep_guide_frame: bool = False
    color_correction: float = 0.0
    score_frames: int | None = None
    score_size: int | None = 224
    evals_per_step: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        _require_int("num_chunks", self.num_chunks, 1)
        _require_int("num_candidates", self.num_candidates, 1)
        _require_int("preview_steps", self.preview_steps, 1)
        _require_int("steps", self.steps, 1)
        _require_int("seed", self.seed, None)
        if self.batch_size is not None:
            _require_int("batch_size", self.batch_size, 1)
        if not isinstance(self.keep_guide_frame, bool):
            raise TypeError(f"keep_guide_frame must be a bool, got {type(self.keep_guide_frame).__name__}")
        if isinstance(self.color_correction, bool) or not isinstance(self.color_correction, (int, float)):
            raise TypeError(f"color_correction must be a number in 0..1, got {self.color_correction!r}")
        if not 0.0 <= self.color_correction <= 1.0:
            raise ValueError(f"color_correction must be in 0..1, got {self.color_correction}")
        if self.score_frames is not None:
            _require_int("score_frames", self.score_frames, 1)
        if self.score_size is not None:
            _require_int("score_size", self.score_size, 8)
        _require_int("evals_per_step", self.evals_per_step, 1)

    @property
    def candidates(self) -> int:
        """Noises drawn per chunk: m, or 1 in naive mode."""
        return 1 if self.mode == "naive" else self.num_candidates

    @property
    def effective_preview_steps(self) -> int:
        """The preview length actually run: ``min(k, s)``."""
        return min(self.preview_steps, self.steps)

    @property
    def rungs(self) -> list[Rung]:
        """The rungs one chunk runs before its winner's full run (see :mod:`.rungs`): none in naive mode."""
        m, k, s = self.num_candidates, self.effective_preview_steps, self.steps
        if self.mode == "halving":
            return halving_rungs(m, k, s)
        return {"search": [Rung(m, k)], "brute_force": [Rung(m, s)], "naive": []}[self.mode]

    @property
    def full_run_reused(self) -> bool:
        """True when the last rung already runs the full s steps, so its winner needs no separate full run."""
        rungs = self.rungs
        return bool(rungs) and rungs[-1].steps == self.steps

    @property
    def evaluations_per_chunk(self) -> int:
        """Per-candidate model evaluations one chunk costs, assuming ``evals_per_step`` per step; exact for
        samplers that make that many evaluations per step (the result reports the measured counts)."""
        return schedule_evaluations(self.rungs, self.steps) * self.evals_per_step

    @property
    def notes(self) -> list[str]:
        """Plain-language notes on how these options were interpreted (for the report and the UI)."""
        k, s, m = self.preview_steps, self.steps, self.num_candidates
        notes = []
        if self.mode in ("search", "halving") and k > s:
            notes.append(f"preview_steps {k} > steps {s}: previews ran {s} steps")
        if self.mode == "halving":
            rungs = self.rungs
            if not rungs:
                notes.append("halving with 1 candidate: nothing to choose, no previews")
            elif m == 2:
                notes.append("halving with 2 candidates has one rung (the same as search)")
            elif len(rungs) == 1 and rungs[0].steps < s:
                notes.append(f"halving: preview_steps {k} leaves budget for one rung only (the same as search)")
        if self.full_run_reused and self.mode != "brute_force":
            notes.append(f"the winner's {s}-step run was reused as its full run")
        return notes

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


def _require_int(name: str, value: object, minimum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
