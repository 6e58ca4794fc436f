"""What a chunk-wise run returns, and the clock that times its phases."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .options import SearchOptions

PHASES = ("preview", "full", "decode", "score", "join")


class PhaseClock:
    """Accumulates wall time per phase (``PHASES``); synchronises CUDA first when ``cuda`` is set."""

    def __init__(self, cuda: bool = False) -> None:
        self.cuda = cuda
        self.totals = dict.fromkeys(PHASES, 0.0)

    @contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        """Time the enclosed block into ``phase``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.totals[phase] += time.perf_counter() - start

    def snapshot(self) -> dict[str, float]:
        return dict(self.totals)

    def since(self, snapshot: dict[str, float]) -> dict[str, float]:
        """Time per phase spent after ``snapshot`` was taken."""
        return {p: self.totals[p] - snapshot[p] for p in PHASES}


@dataclass
class ChunkRecord:
    """What happened for one chunk.

    Attributes:
        index: chunk number, from 0.
        candidate_seeds: the seed of every candidate (one in naive mode).
        candidate_scores: evaluator score of every candidate: of its k-step preview in search mode, of its
            full run in brute force, of the longest rung it reached in halving mode (see ``rungs``); empty in
            naive mode and in halving with one candidate.
        chosen_index, chosen_seed: the candidate whose full run became the chunk.
        final_score: evaluator score of the chunk's full run against its guide (before colour correction);
            None when no evaluator was given.
        evaluations: per-candidate model evaluations (m·k + s, s or m·s for samplers that evaluate the
            model once per step).
        model_calls: batched model calls those evaluations took.
        times: seconds per phase (see ``PHASES``).
        rungs: one dict per rung run (see :mod:`.rungs`; search and brute force have one): ``rung`` (index),
            ``steps``, ``candidates`` (indices into ``candidate_seeds``, ascending), ``scores`` (one per
            candidate, same order) and ``kept`` (the candidates that went on to the next rung, or the winner).
        full_run_reused: True when the last rung ran the full schedule, so the winner's run became the chunk
            without a separate full run.
    """

    index: int
    candidate_seeds: list[int]
    candidate_scores: list[float]
    chosen_index: int
    chosen_seed: int
    final_score: float | None
    evaluations: int
    model_calls: int
    times: dict[str, float] = field(default_factory=dict)
    rungs: list[dict] = field(default_factory=list)
    full_run_reused: bool = False

    def to_report(self) -> dict:
        return {
            "index": self.index,
            "candidate_seeds": list(self.candidate_seeds),
            "candidate_scores": [_json_float(s) for s in self.candidate_scores],
            "chosen_index": self.chosen_index,
            "chosen_seed": self.chosen_seed,
            "final_score": _json_float(self.final_score),
            "evaluations": self.evaluations,
            "model_calls": self.model_calls,
            "times": {p: round(t, 6) for p, t in self.times.items()},
            "rungs": [
                {
                    **rung,
                    "candidates": list(rung["candidates"]),
                    "kept": list(rung["kept"]),
                    "scores": [_json_float(s) for s in rung["scores"]],
                }
                for rung in self.rungs
            ],  # fmt: skip
            "full_run_reused": self.full_run_reused,
        }


@dataclass
class NoiseSearchResult:
    """A finished chunk-wise run.

    Attributes:
        frames: the joined video ``[N, C, H, W]``, values in 0..1, on the requested output device.
        chunks: one :class:`ChunkRecord` per chunk.
        options: the options of the run.
        evaluator: name of the evaluator, or None.
        times: seconds per phase over the whole run.
        wall_time: seconds from start to finish.
    """

    frames: torch.Tensor
    chunks: list[ChunkRecord]
    options: SearchOptions
    evaluator: str | None
    times: dict[str, float]
    wall_time: float

    @property
    def evaluations(self) -> int:
        return sum(c.evaluations for c in self.chunks)

    @property
    def model_calls(self) -> int:
        return sum(c.model_calls for c in self.chunks)

    @property
    def chosen_seeds(self) -> list[int]:
        return [c.chosen_seed for c in self.chunks]

    @property
    def final_scores(self) -> list[float | None]:
        return [c.final_score for c in self.chunks]

    @property
    def notes(self) -> list[str]:
        """How the options were interpreted, e.g. a preview length clamped to the full schedule."""
        return self.options.notes

    def to_report(self) -> dict:
        """A JSON-serialisable summary (NaN scores become None) for a node's report output."""
        return {
            "mode": self.options.mode,
            "options": self.options.to_dict(),
            "evaluator": self.evaluator,
            "num_frames": int(self.frames.shape[0]),
            "frame_shape": list(self.frames.shape[1:]),
            "chosen_seeds": self.chosen_seeds,
            "evaluations": self.evaluations,
            "model_calls": self.model_calls,
            "evaluations_per_chunk_expected": self.options.evaluations_per_chunk,
            "notes": self.notes,
            "times": {p: round(t, 6) for p, t in self.times.items()},
            "wall_time": round(self.wall_time, 6),
            "chunks": [c.to_report() for c in self.chunks],
        }


def _json_float(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value
