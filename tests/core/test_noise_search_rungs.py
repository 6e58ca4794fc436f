"""Rung schedules and the modes built on them: halving, previews of s steps reused, preview_steps above s."""

from __future__ import annotations

import json

import pytest
import torch

from cascadev_core.noise_search import (
    Rung,
    SearchOptions,
    SSIMToGuide,
    draw_noise,
    halving_rungs,
    sample_chunks,
)
from cascadev_core.noise_search.rungs import survivor_counts
from cascadev_core.noise_search.testbed import GaussianMixtureVideo, make_guide

T, SIZE = 4, 12


pytestmark = pytest.mark.usefixtures("single_thread")  # stable timings; the results do not depend on it


@pytest.fixture
def guide() -> torch.Tensor:
    return make_guide(SIZE, SIZE, seed=1)


def small_model() -> GaussianMixtureVideo:
    return GaussianMixtureVideo(num_frames=T, num_components=4, max_drift=0.8, motion=1)


def run(model, guide, evaluator=None, **options):
    opts = {"num_chunks": 2, "num_candidates": 4, "preview_steps": 2, "steps": 6, "seed": 7} | options
    evaluator = evaluator or SSIMToGuide(window_size=5)
    return sample_chunks(model.sample, guide, model.noise_shape(guide), SearchOptions(**opts), evaluator=evaluator)


# --- the schedule --------------------------------------------------------------------------------------

# (m, k, s) -> rungs, worked out by hand from the rule in halving_rungs' docstring: P = m * min(k, s); with R
# rungs, l_r = floor(P_r / (n_r * (2^(R-r) - 1))); R the largest with 1 <= l_0 < l_1 < ...; capped at s.
HAND = {
    (8, 3, 32): [(8, 1), (4, 4)],  # R=3: 24 // 56 = 0; R=2: 24 // 24 = 1, then 16 // 4 = 4
    (8, 8, 32): [(8, 1), (4, 4), (2, 20)],  # 64 // 56 = 1, then 56 // 12 = 4, then 40 // 2 = 20
    (16, 8, 32): [(16, 1), (8, 4), (4, 20)],  # R=4: 128 // 240 = 0; R=3: 128 // 112 = 1, 112 // 24 = 4, 80 // 4
    (4, 8, 32): [(4, 2), (2, 12)],  # 32 // 12 = 2, then 24 // 2 = 12
    (5, 4, 32): [(5, 1), (3, 5)],  # m not a power of two: 5 -> 3 (-> 2 has no budget left): 20 // 15, 15 // 3
    (7, 3, 32): [(7, 1), (4, 3)],  # 21 // 21 = 1, then 14 // 4 = 3 (19 of 21 spent)
    (8, 2, 32): [(8, 2)],  # k <= 2: 16 // 24 = 0, so one rung: plain search
    (3, 2, 32): [(3, 2)],
    (4, 1, 32): [(4, 1)],
    (2, 4, 4): [(2, 4)],  # the only rung is s long: its winner is the chunk
    (8, 32, 32): [(8, 4), (4, 18), (2, 32)],  # k = s: 256 // 56 = 4, 224 // 12 = 18, then 152 // 2 capped at 32
    (8, 9, 4): [(8, 1), (4, 4)],  # k > s runs as k = s = 4: P = 32, 1, then 24 // 4 = 6 capped at 4
    (1, 4, 32): [],  # one candidate: nothing to choose
}


@pytest.mark.parametrize(("mks", "expected"), HAND.items())
def test_halving_rungs_follow_the_documented_rule(mks, expected):
    assert halving_rungs(*mks) == [Rung(n, steps) for n, steps in expected]


def test_survivors_halve_rounding_up():
    assert survivor_counts(8) == [8, 4, 2]
    assert survivor_counts(9) == [9, 5, 3, 2]
    assert survivor_counts(2) == [2]
    assert survivor_counts(1) == []


@pytest.mark.parametrize("mode", ["halving", "search", "brute_force", "naive"])
def test_schedules_stay_within_budget_for_every_m_k_s(mode):
    for m in range(1, 18):
        for k in range(1, 11):
            for s in range(1, 11):
                opts = SearchOptions(mode=mode, num_candidates=m, preview_steps=k, steps=s)
                rungs = opts.rungs
                lengths = [r.steps for r in rungs]
                assert all(1 <= a < b for a, b in zip(lengths, lengths[1:])), (m, k, s, rungs)
                assert all(1 <= n <= s for n in lengths)
                assert [r.candidates for r in rungs] == survivor_counts(m)[: len(rungs)] or mode != "halving"
                reused = bool(rungs) and lengths[-1] == s
                by_hand = sum(r.candidates * r.steps for r in rungs) + (0 if reused else s)
                assert opts.evaluations_per_chunk == by_hand
                cap = {"halving": m * k + s, "search": m * k + s, "brute_force": m * s, "naive": s}[mode]
                assert by_hand <= cap


# --- halving runs --------------------------------------------------------------------------------------


class RecordingEvaluator:
    """SSIM, remembering every score it hands out, in order."""

    def __init__(self):
        self.inner, self.scores = SSIMToGuide(window_size=5), []

    def __call__(self, frames, guide):
        out = self.inner(frames, guide)
        self.scores.extend(out.tolist())
        return out


@pytest.mark.parametrize("batch_size", [None, 3])
def test_halving_keeps_the_better_half_and_previews_each_rung_from_the_candidates_own_noise(guide, batch_size):
    m, k, s = 8, 8, 24  # rungs 8 x 1, 4 x 4, 2 x 20, then the winner's 24 steps
    evaluator = RecordingEvaluator()
    result = run(small_model(), guide, evaluator, mode="halving", num_candidates=m, preview_steps=k, steps=s,
                 batch_size=batch_size)  # fmt: skip
    reference = small_model()
    for chunk in result.chunks:
        assert [(r["steps"], len(r["candidates"])) for r in chunk.rungs] == [(1, 8), (4, 4), (20, 2)]
        assert chunk.rungs[0]["candidates"] == list(range(m))
        for rung, after in zip(chunk.rungs, chunk.rungs[1:]):
            assert after["candidates"] == rung["kept"]
        for rung, keep in zip(chunk.rungs, [4, 2, 1]):
            # the kept ones are the best of this rung's scores (ranked here, independently)
            ranked = sorted(zip(rung["scores"], rung["candidates"]), key=lambda p: -p[0])
            assert rung["kept"] == sorted(c for _, c in ranked[:keep])
        assert chunk.chosen_index == chunk.rungs[-1]["kept"][0]
        # every rung score is that of a complete run of the rung's length from the candidate's own noise
        prev_guide = (guide if chunk.index == 0 else result.frames[T - 1])[None]
        last_score = {}
        for rung in chunk.rungs:
            for cand, score in zip(rung["candidates"], rung["scores"]):
                noise = draw_noise(reference.noise_shape(guide), [chunk.candidate_seeds[cand]])
                frames = reference.sample(noise, prev_guide, rung["steps"], lambda: None)
                assert score == pytest.approx(SSIMToGuide(window_size=5)(frames, prev_guide).item(), abs=1e-6)
                last_score[cand] = score
        assert chunk.candidate_scores == [last_score[c] for c in range(m)]  # the longest rung each reached
    per_chunk = 8 + 4 + 2 + 1  # every rung candidate and the full run are scored once
    assert len(evaluator.scores) == 2 * per_chunk
    assert [c.evaluations for c in result.chunks] == [8 * 1 + 4 * 4 + 2 * 20 + s] * 2
    calls = {None: 1 + 4 + 20 + s, 3: 3 * 1 + 2 * 4 + 1 * 20 + s}[batch_size]  # ceil(n_r / b) * l_r, then s
    assert [c.model_calls for c in result.chunks] == [calls] * 2


def test_halving_with_a_rung_of_s_steps_reuses_it_as_the_full_run(guide):
    # m=4, k=4, s=3: k runs as 3, P = 12, rungs 4 x (12 // 12 = 1) then 2 x (8 // 2 = 4, capped at 3 = s)
    result = run(small_model(), guide, mode="halving", num_candidates=4, preview_steps=4, steps=3)
    assert [c.evaluations for c in result.chunks] == [4 * 1 + 2 * 3] * 2
    assert all(c.full_run_reused for c in result.chunks)
    assert result.notes[0] == "preview_steps 4 > steps 3: previews ran 3 steps"
    # the chunk is the winner's 3-step run: naive from the chosen seeds gives the same video
    first = result.chunks[0]
    naive = run(small_model(), guide, mode="naive", num_chunks=1, steps=3, seed=first.chosen_seed)
    assert torch.equal(naive.frames, result.frames[:T])
    assert first.final_score == first.rungs[-1]["scores"][first.rungs[-1]["candidates"].index(first.chosen_index)]


@pytest.mark.parametrize("k", [6, 9])
def test_search_with_previews_of_s_steps_is_brute_force_at_its_cost(guide, k):
    """k >= s: the previews are full runs, so nothing runs twice; k > s is run as s, with a note."""
    search = run(small_model(), guide, preview_steps=k, steps=6)
    brute = run(small_model(), guide, mode="brute_force", steps=6)
    assert torch.equal(search.frames, brute.frames)
    assert search.chosen_seeds == brute.chosen_seeds
    assert search.evaluations == brute.evaluations == 2 * 4 * 6
    assert search.options.evaluations_per_chunk == 4 * 6
    assert all(c.full_run_reused for c in search.chunks)
    expected_notes = ["preview_steps 9 > steps 6: previews ran 6 steps"] if k > 6 else []
    assert search.notes[: len(expected_notes)] == expected_notes
    assert "the winner's 6-step run was reused as its full run" in search.notes


def test_distilled_schedule_with_larger_preview_steps_runs_instead_of_failing(guide):
    model = small_model()
    result = run(model, guide, preview_steps=4, steps=2, num_candidates=3)
    assert result.evaluations == model.evaluations == 2 * 3 * 2
    report = json.loads(json.dumps(result.to_report()))
    assert report["notes"][0] == "preview_steps 4 > steps 2: previews ran 2 steps"
    assert SearchOptions(mode="naive", preview_steps=50, steps=2).notes == []


def test_halving_notes_when_k_leaves_room_for_one_rung():
    assert SearchOptions(mode="halving", num_candidates=8, preview_steps=2, steps=20).notes == [
        "halving: preview_steps 2 leaves budget for one rung only (the same as search)"
    ]
    assert SearchOptions(mode="halving", num_candidates=1, preview_steps=2, steps=20).notes == [
        "halving with 1 candidate: nothing to choose, no previews"
    ]
    assert SearchOptions(mode="halving", num_candidates=2, preview_steps=3, steps=20).notes == [
        "halving with 2 candidates has one rung (the same as search)"
    ]
    assert SearchOptions(mode="halving", num_candidates=8, preview_steps=3, steps=20).notes == []


def test_report_lists_rungs(guide):
    result = run(small_model(), guide, mode="halving", num_candidates=5, preview_steps=4, steps=8, num_chunks=1)
    report = json.loads(json.dumps(result.to_report()))
    chunk = report["chunks"][0]
    assert [(r["rung"], r["steps"], len(r["candidates"]), len(r["kept"])) for r in chunk["rungs"]] == [
        (0, 1, 5, 3),
        (1, 5, 3, 1),
    ]
    assert report["evaluations"] == report["evaluations_per_chunk_expected"] == 5 * 1 + 3 * 5 + 8
    assert chunk["full_run_reused"] is False
