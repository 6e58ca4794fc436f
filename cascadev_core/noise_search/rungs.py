"""Rung schedules: how many candidates are sampled with how many steps, one rung after the other.

Every mode except ``"naive"`` is a list of rungs followed, when needed, by one full run of the winner:

* ``"search"``: one rung, m candidates x k steps (the paper's k-step search);
* ``"brute_force"``: one rung, m candidates x s steps;
* ``"halving"``: successive halving, :func:`halving_rungs`.

Each rung samples its candidates with their own complete schedule of ``steps`` steps from their own initial
noise (never continuing an earlier rung), keeps the better part for the next rung, and the best of the last rung
wins. A rung of ``steps == s`` *is* the full run: its winner's frames become the chunk and no full run follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rung:
    """One rung: ``candidates`` candidates, each sampled with a complete ``steps``-step schedule."""

    candidates: int
    steps: int

    @property
    def evaluations(self) -> int:
        """Per-candidate model evaluations of the rung (one per step)."""
        return self.candidates * self.steps


def survivor_counts(num_candidates: int, keep: int = 2) -> list[int]:
    """Candidates per rung when each rung keeps ``ceil(n / keep)``, down to the last rung of at most ``keep``.

    ``survivor_counts(8) == [8, 4, 2]``, ``survivor_counts(5) == [5, 3, 2]``, ``survivor_counts(2) == [2]``,
    ``survivor_counts(1) == []`` (one candidate: nothing to choose). ``len == ceil(log_keep(m))``.
    """
    counts, n = [], num_candidates
    while n > 1:
        counts.append(n)
        n = math.ceil(n / keep)
    return counts


def halving_rungs(num_candidates: int, preview_steps: int, steps: int, keep: int = 2) -> list[Rung]:
    """The successive-halving schedule for m candidates, k preview steps and s full steps.

    The preview budget is ``P = m * min(k, s)`` evaluations (what ``"search"`` spends on its previews). Each rung
    gets twice the budget of the rung before: early rungs only throw away clearly bad candidates, which a short
    preview can do, and the budget goes where the good ones are told apart.

    1. Candidates per rung: ``n_0 = m``, ``n_{r+1} = ceil(n_r / keep)``, for at most ``R_max = ceil(log_keep m)``
       rungs, so the last possible rung holds 2..keep candidates (:func:`survivor_counts`). m = 1: no rung.
    2. Steps per rung, for R rungs: of the budget ``P_r`` left, rung r takes the share ``2^r / (2^r + ... +
       2^(R-1))``, i.e. ``l_r = floor(P_r / (n_r * (2^(R-r) - 1)))``, with ``P_0 = P`` and
       ``P_{r+1} = P_r - n_r * l_r`` (the last rung takes what is left).
    3. R is the largest ``R <= R_max`` whose lengths are ``1 <= l_0 < l_1 < ...``: a rung no longer than the one
       before would re-run the same schedule and learn nothing. R = 1 always qualifies (``l_0 = min(k, s)``, which
       is plain search), so a small k gives fewer rungs: k <= 2 gives plain search for any m.
    4. The first rung with ``l_r >= s`` runs ``s`` steps and is the last: its winner's run is the chunk.

    Examples (s = 32): m=8, k=3 -> 8x1, 4x4 (24 = m*k); m=8, k=8 -> 8x1, 4x4, 2x20 (64); m=16, k=8 -> 16x1,
    8x4, 4x20 (128); m=4, k=8 -> 4x2, 2x12 (32); m=5, k=4 -> 5x1, 3x5 (20); m=7, k=3 -> 7x1, 4x3 (19 of 21);
    m=8, k=2 -> 8x2 (search); m=8, k=32 (= s) -> 8x4, 4x18, 2x32 (168, no full run).

    Returns:
        The rungs; their evaluations sum to at most ``P``, so a chunk costs at most ``m * k + s``.
    """
    budget = num_candidates * min(preview_steps, steps)
    counts = survivor_counts(num_candidates, keep)
    for num_rungs in range(len(counts), 0, -1):
        lengths = _spread(budget, counts[:num_rungs])
        if lengths[0] >= 1 and all(a < b for a, b in zip(lengths, lengths[1:])):
            break
    else:
        return []  # m = 1
    rungs = []
    for n, length in zip(counts, lengths):
        rungs.append(Rung(n, min(length, steps)))
        if length >= steps:
            break
    return rungs


def _spread(budget: int, counts: list[int]) -> list[int]:
    """Steps per rung when each rung takes twice the budget of the one before (see :func:`halving_rungs`)."""
    lengths = []
    for r, n in enumerate(counts):
        length = budget // (n * (2 ** (len(counts) - r) - 1))
        lengths.append(length)
        budget -= n * length
    return lengths


def schedule_evaluations(rungs: list[Rung], steps: int) -> int:
    """Per-candidate evaluations of one chunk: the rungs plus a full run of ``steps`` unless the last rung
    already ran ``steps`` (or, with no rung at all, the single candidate's full run)."""
    reused = bool(rungs) and rungs[-1].steps >= steps
    return sum(r.evaluations for r in rungs) + (0 if reused else steps)
