"""What sample_chunks tells its callables: candidate seeds to ``sample``, candidate events to ``on_candidate``."""

from __future__ import annotations

import math

import pytest
import torch

from cascadev_core.noise_search import SearchOptions, SSIMToGuide, accepts_seeds, draw_noise, sample_chunks
from cascadev_core.noise_search.testbed import GaussianMixtureVideo, karras_sigmas, make_guide

T, SIZE = 4, 12


pytestmark = pytest.mark.usefixtures("single_thread")  # stable timings; the results do not depend on it


@pytest.fixture
def guide() -> torch.Tensor:
    return make_guide(SIZE, SIZE, seed=1)


def small_model() -> GaussianMixtureVideo:
    return GaussianMixtureVideo(num_frames=T, num_components=4, max_drift=0.8, motion=1)


def options(**changes) -> SearchOptions:
    return SearchOptions(
        **({"num_chunks": 2, "num_candidates": 4, "preview_steps": 2, "steps": 6, "seed": 7} | changes)
    )


# --- seeds handed to sample ----------------------------------------------------------------------------


class SeedRecorder:
    """The testbed sampler, taking ``seeds`` and recording (seeds, noise, num_steps) of every call."""

    def __init__(self):
        self.model, self.calls = small_model(), []

    def __call__(self, noise, guide, num_steps, on_eval, seeds=None):
        self.calls.append((list(seeds), noise.clone(), num_steps))
        return self.model.sample(noise, guide, num_steps, on_eval)


@pytest.mark.parametrize("mode", ["search", "halving"])
def test_sample_gets_the_seed_of_every_noise_slice_and_the_full_run_repeats_the_preview_noise(guide, mode):
    sampler = SeedRecorder()
    opts = options(mode=mode, num_candidates=5, preview_steps=3, batch_size=2)
    result = sample_chunks(sampler, guide, (T, 3, SIZE, SIZE), opts, evaluator=SSIMToGuide(5))
    noise_by_seed: dict[int, list[torch.Tensor]] = {}
    for seeds, noise, _ in sampler.calls:
        assert len(seeds) == noise.shape[0]
        for seed, piece in zip(seeds, noise):
            assert torch.equal(piece, torch.randn(T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)))
            noise_by_seed.setdefault(seed, []).append(piece)
    for chunk in result.chunks:
        chosen = noise_by_seed[chunk.chosen_seed]
        assert len(chosen) >= 2  # previewed at least once, then run in full
        assert all(torch.equal(chosen[0], n) for n in chosen[1:])  # bitwise the same noise every time
        assert set(chunk.candidate_seeds) <= set(noise_by_seed)
    full_calls = [seeds for seeds, _, steps in sampler.calls if steps == 6]
    assert full_calls == [[c.chosen_seed] for c in result.chunks]


def test_old_four_argument_samplers_get_no_seeds(guide):
    model = small_model()
    result = sample_chunks(model.sample, guide, model.noise_shape(guide), options(), evaluator=SSIMToGuide(5))
    assert result.evaluations == 2 * (4 * 2 + 6)


def test_which_samplers_accept_seeds():
    def old(noise, guide, num_steps, on_eval):
        return noise

    def keyword_only(noise, guide, num_steps, on_eval, *, seeds):
        return noise

    def kwargs(noise, guide, num_steps, on_eval, **kw):
        return noise

    def positional_only(noise, guide, num_steps, on_eval, seeds, /):
        return noise

    assert not accepts_seeds(old)
    assert accepts_seeds(keyword_only) and accepts_seeds(kwargs) and accepts_seeds(SeedRecorder())
    assert not accepts_seeds(positional_only)
    assert not accepts_seeds(print)  # no signature: called the old way


def ancestral(model: GaussianMixtureVideo, eta: float = 1.0):
    """Euler-ancestral on the testbed whose per-step noise comes from each candidate's seed (as the node must
    do for ComfyUI's ancestral / SDE samplers), so results do not depend on the batch."""

    def sample(noise, guide, num_steps, on_eval, seeds):
        sigmas = karras_sigmas(num_steps, model.sigma_min, model.sigma_max, model.rho)
        gens = [torch.Generator().manual_seed(seed ^ 0x5DEECE66D) for seed in seeds]
        x = noise.float() * sigmas[0]
        for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
            on_eval()
            denoised = model.denoise(x, sigma, guide)
            up = min(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
            down = (sigma_next**2 - up**2) ** 0.5
            x = denoised + (x - denoised) * (down / sigma)
            if sigma_next > 0:
                fresh = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens])
                x = x + fresh * up
        return x.clamp(0, 1)

    return sample


def test_ancestral_sampler_seeded_per_candidate_is_independent_of_batch_size(guide):
    runs = []
    for batch_size in (1, 3, None):
        model = small_model()
        opts = options(num_candidates=5, batch_size=batch_size, mode="halving", preview_steps=3)
        runs.append(sample_chunks(ancestral(model), guide, model.noise_shape(guide), opts, evaluator=SSIMToGuide(5)))
    for other in runs[1:]:
        assert torch.equal(other.frames, runs[0].frames)
        assert [c.candidate_scores for c in other.chunks] == [c.candidate_scores for c in runs[0].chunks]
    deterministic = small_model()
    plain = sample_chunks(
        deterministic.sample, guide, deterministic.noise_shape(guide), options(), evaluator=SSIMToGuide(5)
    )
    assert not torch.equal(plain.frames, runs[0].frames)  # the per-step noise does change the result


# --- on_candidate --------------------------------------------------------------------------------------


def collect(mode, guide, evaluator="ssim", **changes):
    evaluator = SSIMToGuide(5) if evaluator == "ssim" else evaluator
    events = []
    model = small_model()
    result = sample_chunks(model.sample, guide, model.noise_shape(guide), options(mode=mode, **changes),
                           evaluator=evaluator, on_candidate=events.append)  # fmt: skip
    return result, events


def test_search_reports_every_preview_the_full_run_and_the_choice(guide):
    result, events = collect("search", guide)
    kinds = [(e["event"], e["chunk"], e.get("phase"), e.get("steps")) for e in events]
    per_chunk = lambda c: [("candidate", c, "preview", 2)] * 4 + [("candidate", c, "full", 6), ("chosen", c, None, 6)]  # noqa: E731
    assert kinds == per_chunk(0) + per_chunk(1)
    for chunk in result.chunks:
        mine = [e for e in events if e["chunk"] == chunk.index]
        previews, full, chosen = mine[:4], mine[4], mine[5]
        assert [e["candidate"] for e in previews] == [0, 1, 2, 3]
        assert [e["seed"] for e in previews] == chunk.candidate_seeds
        assert [e["score"] for e in previews] == chunk.candidate_scores
        assert all(e["rung"] == 0 and e["frame"].shape == (3, SIZE, SIZE) for e in previews)
        assert all(e["scored_frames"].shape == (T, 3, SIZE, SIZE) for e in previews)
        assert full["candidate"] == chosen["chosen"] == chunk.chosen_index and full["rung"] is None
        assert full["score"] == chosen["score"] == chunk.final_score
        assert chosen["seed"] == chunk.chosen_seed and chosen["reused"] is False
        assert chosen["evaluations"] == 4 * 2 + 6
    # the chosen chunk's frame is its last joined frame, i.e. the next chunk's guide
    assert torch.equal(events[5]["frame"], result.frames[T - 1])
    assert torch.equal(events[-1]["frame"], result.frames[-1])
    # a preview's frame is the last frame of that candidate's own 2-step run
    reference = small_model()
    for e in events[:4]:
        frames = reference.sample(draw_noise(reference.noise_shape(guide), [e["seed"]]), guide[None], 2, lambda: None)
        assert torch.equal(e["frame"], frames[0, -1])


def test_halving_reports_rungs(guide):
    result, events = collect("halving", guide, num_candidates=8, preview_steps=3, steps=8, num_chunks=1)
    candidates = [e for e in events if e["event"] == "candidate"]
    assert [(e["phase"], e["rung"], e["steps"]) for e in candidates] == (
        [("rung", 0, 1)] * 8 + [("rung", 1, 4)] * 4 + [("full", None, 8)]  # rungs 8 x 1, 4 x 4
    )
    chunk = result.chunks[0]
    for rung in chunk.rungs:
        mine = [e for e in candidates if e["rung"] == rung["rung"]]
        assert [e["candidate"] for e in mine] == rung["candidates"]
        assert [e["score"] for e in mine] == rung["scores"]


def test_brute_force_reports_reused_full_runs(guide):
    result, events = collect("brute_force", guide, num_chunks=1)
    assert [e["phase"] for e in events[:-1]] == ["full"] * 4
    assert events[-1]["event"] == "chosen" and events[-1]["reused"] is True
    assert events[-1]["score"] == max(e["score"] for e in events[:-1]) == result.chunks[0].final_score


def test_naive_without_evaluator_reports_unscored_runs(guide):
    result, events = collect("naive", guide, evaluator=None, num_chunks=2)
    assert [(e["event"], e["chunk"]) for e in events] == [
        ("candidate", 0),
        ("chosen", 0),
        ("candidate", 1),
        ("chosen", 1),
    ]
    assert all(math.isnan(e["score"]) for e in events)
    assert events[0]["scored_frames"] is None and events[0]["seed"] == 7
    assert torch.equal(events[0]["frame"], result.frames[T - 1])


def test_bad_on_candidate_is_named(guide):
    model = small_model()
    with pytest.raises(TypeError, match="on_candidate"):
        sample_chunks(model.sample, guide, model.noise_shape(guide), options(mode="naive"), on_candidate=3)


def test_noise_slice_is_what_draw_noise_gives_for_the_seed():
    """The contract the node relies on when it re-derives a candidate's noise from its seed."""
    seeds = [7, 2**63 + 5]
    assert torch.equal(draw_noise((2, 3), seeds)[1], draw_noise((2, 3), [seeds[1]])[0])
