"""One chunk: its rungs of candidates (see :mod:`.rungs`), the winner's full run, and the events a UI follows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..executor import Executor, sample_batches
from .counting import EvalCounter
from .evaluators import Evaluator
from .options import SearchOptions
from .result import ChunkRecord, PhaseClock
from .scoring import evaluate, prepare_frames, shrink_images, top_indices
from .seeds import candidate_seeds, draw_noise

SampleFn = Callable[..., torch.Tensor]
DecodeFn = Callable[[torch.Tensor], torch.Tensor]
CandidateHook = Callable[[dict], None]


@dataclass
class ChunkRunner:
    """Runs one chunk in the configured mode; holds the callables, the counter and the clock.

    ``pass_seeds``: hand ``seeds=[...]`` (one per noise slice) to ``sample`` as a keyword.
    ``on_candidate``: called with a plain dict after every candidate run is scored (see
    :func:`~.sampler.sample_chunks`).
    """

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
    pass_seeds: bool = False
    on_candidate: CandidateHook | None = None
    executor: Executor | None = None

    def run(self, index: int, guide: torch.Tensor) -> tuple[ChunkRecord, torch.Tensor]:
        """Chunk ``index`` from ``guide [1, C, H, W]``: its record and its frames ``[T, C, H, W]``.

        Every rung samples its candidates from their own initial noise with a complete schedule of the rung's
        length, keeps the best ``rungs[r + 1].candidates`` (the best one after the last rung), and the winner
        gets the full s steps unless the last rung already ran them.
        """
        o = self.options
        evals, calls, times = self.counter.evaluations, self.counter.model_calls, self.clock.snapshot()
        seeds = candidate_seeds(o.seed, index, o.candidates)
        score_guide = None if self.evaluator is None else shrink_images(guide, o.score_size)
        rungs = o.rungs
        phase = {"search": "preview", "halving": "rung", "brute_force": "full"}.get(o.mode, "full")
        last_scores = [math.nan] * len(seeds)
        alive, best_frames, rung_records = list(range(len(seeds))), None, []
        for r, rung in enumerate(rungs):
            keep_best = rung.steps == o.steps
            scores, best_frames = self._run_candidates(
                index, r, alive, seeds, guide, score_guide, rung.steps, phase, keep_best
            )
            for i, score in zip(alive, scores):
                last_scores[i] = score
            survivors = rungs[r + 1].candidates if r + 1 < len(rungs) else 1
            kept = [alive[j] for j in top_indices(scores, survivors)]
            rung_records.append({"rung": r, "steps": rung.steps, "candidates": alive, "scores": scores, "kept": kept})
            alive = kept
        chosen = alive[0]
        if o.full_run_reused:
            frames, final = best_frames, last_scores[chosen]
        else:
            x = self._sample([seeds[chosen]], guide, o.steps, "full")
            frames = self._frames(x)
            final, reduced = (None, None) if self.evaluator is None else self._score(frames, score_guide)
            self._emit(index, chosen, seeds[chosen], "full", None, o.steps, final, frames, reduced)
        record = ChunkRecord(
            index=index,
            candidate_seeds=seeds,
            candidate_scores=last_scores if rungs else [],
            chosen_index=chosen,
            chosen_seed=seeds[chosen],
            final_score=final,
            evaluations=self.counter.evaluations - evals,
            model_calls=self.counter.model_calls - calls,
            times=self.clock.since(times),
            rungs=rung_records,
            full_run_reused=o.full_run_reused,
        )
        return record, frames[0]

    def _run_candidates(
        self,
        chunk: int,
        rung: int,
        candidates: list[int],
        seeds: list[int],
        guide: torch.Tensor,
        score_guide: torch.Tensor,
        num_steps: int,
        phase: str,
        keep_best: bool,
    ) -> tuple[list[float], torch.Tensor | None]:
        """Sample ``candidates`` (indices into ``seeds``) in batches and score each; with ``keep_best``, also
        return the best one's frames ``[1, T, C, H, W]`` (the only full-resolution frames kept)."""
        batch = self.options.batch_size or len(candidates)
        clock_phase = "full" if num_steps == self.options.steps else "preview"
        scores: list[float] = []
        best, best_score = None, -math.inf
        groups = [candidates[first : first + batch] for first in range(0, len(candidates), batch)]
        batches = self._sample_batches([[seeds[i] for i in group] for group in groups], guide, num_steps, clock_phase)
        for group, x in zip(groups, batches):
            for j, candidate in enumerate(group):
                frames = self._frames(x[j : j + 1])
                score, reduced = self._score(frames, score_guide)
                scores.append(score)
                self._emit(chunk, candidate, seeds[candidate], phase, rung, num_steps, score, frames, reduced)
                clean = -math.inf if math.isnan(score) else score
                if keep_best and (best is None or clean > best_score):
                    # A slice of the sampler's batch would keep the whole batch alive: copy it.
                    best, best_score = (frames.clone() if self.decode is None else frames), clean
            del x
        return scores, best

    def _emit(self, chunk, candidate, seed, phase, rung, steps, score, frames, reduced) -> None:
        """Tell ``on_candidate`` about one scored candidate run (see :func:`~.sampler.sample_chunks`)."""
        if self.on_candidate is None:
            return
        self.on_candidate(
            {
                "event": "candidate",
                "chunk": chunk,
                "candidate": candidate,
                "seed": seed,
                "phase": phase,
                "rung": rung,
                "steps": steps,
                "score": math.nan if score is None else float(score),
                "frame": frames[0, -1],
                "scored_frames": None if reduced is None else reduced[0],
            }
        )

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
        seed_lists = batches if self.pass_seeds else None
        runs = sample_batches(self.executor, self.sample, noises, batches, guide, num_steps, self.counter, seed_lists)
        for _ in batches:
            with self.clock.measure(phase):
                x = next(runs)
            yield x

    def _sample(self, seeds: list[int], guide: torch.Tensor, num_steps: int, phase: str) -> torch.Tensor:
        """One sampler call on the candidates of ``seeds``; returns its output ``[len(seeds), ...]``.

        The noise of a candidate is drawn from its seed alone, so every rung and the full run of a candidate
        start from bitwise the same noise."""
        noise = draw_noise(self.noise_shape, seeds, device=self.device, dtype=self.dtype)
        extra = {"seeds": list(seeds)} if self.pass_seeds else {}
        with self.clock.measure(phase), self.counter.run(len(seeds)):
            x = self.sample(noise, guide, num_steps, self.counter, **extra)
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

    def _score(self, frames: torch.Tensor, score_guide: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Evaluator score of one candidate's frames ``[1, T, C, H, W]``, and the reduced frames
        ``[1, T', C, h, w]`` it was computed on."""
        o = self.options
        with self.clock.measure("score"):
            reduced = prepare_frames(frames, o.score_frames, o.score_size)
            return evaluate(self.evaluator, reduced, score_guide.to(reduced.device))[0], reduced
