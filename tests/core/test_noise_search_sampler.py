"""sample_chunks on the known-answer testbed: costs, seeds, choice, batching, progress, errors, joining."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cascadev_core.noise_search import (
    SearchOptions,
    SSIMToGuide,
    candidate_seed,
    candidate_seeds,
    chunk_lab_statistics,
    draw_noise,
    sample_chunks,
)
from cascadev_core.noise_search.testbed import GaussianMixtureVideo, make_guide
from cascadev_core.progress import Interrupted

T, SIZE = 4, 12
NAIVE = SearchOptions(mode="naive", num_chunks=1, steps=3)


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: one thread avoids OpenMP spin-waits


def small_model() -> GaussianMixtureVideo:
    return GaussianMixtureVideo(num_frames=T, num_components=4, max_drift=0.8, motion=1)


@pytest.fixture
def guide() -> torch.Tensor:
    return make_guide(SIZE, SIZE, seed=1)


def run(model, guide, evaluator=None, **options):
    opts = {"num_chunks": 2, "num_candidates": 4, "preview_steps": 2, "steps": 6, "seed": 7} | options
    if evaluator is None and opts.get("mode", "search") != "naive":
        evaluator = SSIMToGuide(window_size=5)
    shape = model.noise_shape(guide)
    return sample_chunks(model.sample, guide, shape, SearchOptions(**opts), evaluator=evaluator)


# --- costs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [None, 3, 1])
@pytest.mark.parametrize("mode", ["search", "naive", "brute_force", "halving"])
def test_evaluations_per_chunk_are_exact(guide, mode, batch_size):
    m, k, s, n = 4, 2, 6, 2
    model = small_model()
    opts = {"num_candidates": m, "preview_steps": k, "steps": s, "num_chunks": n, "batch_size": batch_size}
    result = run(model, guide, mode=mode, **opts)
    b = batch_size or m
    # halving, by hand: budget m*k = 8; two rungs would need 8 // (4 * 3) = 0 steps first -> 4 x 2, then s
    expected = {"search": m * k + s, "naive": s, "brute_force": m * s, "halving": 4 * 2 + s}[mode]
    batches = math.ceil(m / b)
    halving_calls = batches * 2 + s
    expected_calls = {"search": batches * k + s, "naive": s, "brute_force": batches * s, "halving": halving_calls}[mode]
    assert [c.evaluations for c in result.chunks] == [expected] * n
    assert [c.model_calls for c in result.chunks] == [expected_calls] * n
    # The model's own counters agree with what the hook counted.
    assert model.evaluations == result.evaluations == n * expected
    assert model.calls == result.model_calls == n * expected_calls
    assert result.to_report()["evaluations_per_chunk_expected"] == expected


# --- seeds and choice ----------------------------------------------------------------------------------


def test_same_seed_gives_bitwise_same_output(guide):
    a, b = run(small_model(), guide), run(small_model(), guide)
    assert torch.equal(a.frames, b.frames)
    assert a.chosen_seeds == b.chosen_seeds
    assert [c.candidate_scores for c in a.chunks] == [c.candidate_scores for c in b.chunks]
    c = run(small_model(), guide, seed=8)
    assert not torch.equal(a.frames, c.frames)


def test_seeds_are_documented_and_reported(guide):
    result = run(small_model(), guide, seed=5, num_candidates=3)
    for chunk in result.chunks:
        assert chunk.candidate_seeds == candidate_seeds(5, chunk.index, 3)
        assert chunk.chosen_seed == chunk.candidate_seeds[chunk.chosen_index]
    assert result.chunks[0].candidate_seeds[0] == 5  # chunk 0, candidate 0: the base seed itself
    assert candidate_seed(-1, 0, 0) == 2**64 - 1
    # Documented formula: splitmix64(splitmix64(splitmix64(base) ^ chunk) ^ candidate).
    assert candidate_seed(5, 2, 1) == 8685252407396964


def test_neighbouring_base_seeds_share_no_candidates():
    """Incrementing the seed (ComfyUI's 'increment') must give new candidates, not the same ones shifted."""
    seeds = [set(s) for base in range(4) for s in [sum((candidate_seeds(base, c, 64) for c in range(4)), [])]]
    assert all(len(s) == 4 * 64 for s in seeds)
    assert all(not (seeds[i] & seeds[j]) for i in range(4) for j in range(i + 1, 4))


def test_batched_noise_equals_noise_drawn_alone():
    seeds = [3, 1_000_006, 11]
    batch = draw_noise((2, 3, 4), seeds)
    for i, seed in enumerate(seeds):
        assert torch.equal(batch[i], draw_noise((2, 3, 4), [seed])[0])


class RecordingEvaluator:
    """SSIM, remembering every score it hands out."""

    def __init__(self):
        self.inner, self.scores = SSIMToGuide(window_size=5), []

    def __call__(self, frames, guide):
        out = self.inner(frames, guide)
        self.scores.extend(out.tolist())
        return out


@pytest.mark.parametrize("mode", ["search", "brute_force"])
def test_chosen_candidate_is_the_argmax_of_the_evaluator(guide, mode):
    evaluator = RecordingEvaluator()
    result = run(small_model(), guide, evaluator, mode=mode, num_candidates=5, num_chunks=3, batch_size=2)
    per_chunk = 5 + (mode == "search")  # search also scores its final run
    for chunk in result.chunks:
        recorded = evaluator.scores[chunk.index * per_chunk : chunk.index * per_chunk + 5]
        assert chunk.candidate_scores == pytest.approx(recorded, abs=0)
        assert chunk.chosen_index == int(torch.tensor(recorded).argmax())
    assert any(c.chosen_index != 0 for c in result.chunks)  # the choice is not trivially candidate 0


def test_full_run_reuses_the_chosen_noise(guide):
    search = run(small_model(), guide, num_chunks=1)
    chosen = search.chunks[0].chosen_seed
    naive = run(small_model(), guide, mode="naive", num_chunks=1, seed=chosen)
    assert naive.chosen_seeds == [chosen]
    assert torch.equal(search.frames, naive.frames)


@pytest.mark.parametrize("mode", ["search", "brute_force", "halving"])
def test_one_candidate_equals_naive(guide, mode):
    one = run(small_model(), guide, mode=mode, num_candidates=1, num_chunks=3)
    naive = run(small_model(), guide, mode="naive", num_chunks=3)
    assert one.chosen_seeds == naive.chosen_seeds
    assert torch.equal(one.frames, naive.frames)


def test_batch_size_changes_nothing_but_calls(guide):
    results = [run(small_model(), guide, num_candidates=5, num_chunks=2, batch_size=b) for b in (1, 2, 5)]
    for other in results[1:]:
        assert other.chosen_seeds == results[0].chosen_seeds
        assert [c.candidate_scores for c in other.chunks] == [c.candidate_scores for c in results[0].chunks]
        assert torch.equal(other.frames, results[0].frames)
    assert [r.model_calls for r in results] == [2 * (5 * 2 + 6), 2 * (3 * 2 + 6), 2 * (1 * 2 + 6)]


# --- progress and cancellation -------------------------------------------------------------------------


def test_progress_reports_every_evaluation(guide):
    steps = []
    model = small_model()
    opts = SearchOptions(num_chunks=2, num_candidates=3, preview_steps=2, steps=5, batch_size=2)
    sample_chunks(
        model.sample,
        guide,
        model.noise_shape(guide),
        opts,
        evaluator=SSIMToGuide(5),
        on_step=lambda d, t: steps.append((d, t)),
    )
    total = 2 * (3 * 2 + 5)
    assert steps[-1] == (total, total)
    assert all(t == total for _, t in steps)
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    assert len(steps) == model.calls


def test_progress_total_follows_evals_per_step(guide):
    """A Heun-type sampler evaluates twice per step: counts are measured, evals_per_step sizes the bar."""
    model = small_model()

    def two_per_step(noise, guide, num_steps, on_eval):
        return model.sample(noise, guide, 2 * num_steps, on_eval)

    steps = []
    opts = SearchOptions(num_candidates=3, preview_steps=2, steps=5, evals_per_step=2)
    result = sample_chunks(
        two_per_step,
        guide,
        model.noise_shape(guide),
        opts,
        evaluator=SSIMToGuide(5),
        on_step=lambda *a: steps.append(a),
    )
    assert result.evaluations == model.evaluations == 2 * (3 * 2 + 5)
    assert steps[-1] == (result.evaluations, result.evaluations)


def test_interrupt_stops_within_one_evaluation_and_returns_nothing(guide):
    model = small_model()
    done = []
    stop_after = 7

    def should_stop():
        return bool(done) and done[-1] >= stop_after

    with pytest.raises(Interrupted):
        sample_chunks(
            model.sample,
            guide,
            model.noise_shape(guide),
            SearchOptions(num_chunks=3, num_candidates=2, preview_steps=2, steps=6, batch_size=1),
            evaluator=SSIMToGuide(5),
            on_step=lambda d, t: done.append(d),
            should_stop=should_stop,
        )
    assert model.evaluations == stop_after  # not one evaluation after the stop was asked for


def test_stop_before_start_runs_nothing(guide):
    model = small_model()
    with pytest.raises(Interrupted):
        sample_chunks(model.sample, guide, model.noise_shape(guide), NAIVE, should_stop=lambda: True)
    assert model.calls == 0


def test_sampler_that_skips_on_eval_is_rejected(guide):
    def silent(noise, guide, num_steps, on_eval):
        return noise.new_zeros(noise.shape[0], T, 3, SIZE, SIZE)

    with pytest.raises(RuntimeError, match="on_eval"):
        sample_chunks(silent, guide, (T, 3, SIZE, SIZE), NAIVE)


# --- bad arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"num_candidates": 0}, "num_candidates"),
        ({"preview_steps": 0}, "preview_steps"),
        ({"preview_steps": 2.0}, "preview_steps"),
        ({"num_chunks": 0}, "num_chunks"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"mode": "greedy"}, "mode"),
        ({"color_correction": 1.5}, "color_correction"),
        ({"num_candidates": 2.0}, "num_candidates"),
    ],
)
def test_bad_options_name_the_argument(options, name):
    with pytest.raises((ValueError, TypeError), match=name):
        SearchOptions(**options)


@pytest.mark.parametrize(
    "bad_guide",
    [
        torch.rand(3, SIZE + 4, SIZE),  # not the model's frame size
        torch.rand(2, 3, SIZE, SIZE),  # a batch
        torch.rand(SIZE, SIZE),  # no channels
        torch.rand(3, SIZE, SIZE) * 4,  # not in 0..1
        torch.zeros(3, SIZE, SIZE, dtype=torch.uint8),
    ],
)
def test_bad_guide_is_named(bad_guide):
    model = small_model()

    def sample(noise, guide, num_steps, on_eval):  # a model whose frame size is fixed by its latent
        guide = torch.nn.functional.interpolate(guide.float(), size=(SIZE, SIZE))
        return model.sample(noise, guide, num_steps, on_eval)

    with pytest.raises(ValueError, match="guide"):
        sample_chunks(sample, bad_guide, (T, 3, SIZE, SIZE), NAIVE)


def test_missing_evaluator_and_bad_noise_shape_are_named(guide):
    model = small_model()
    with pytest.raises(ValueError, match="evaluator"):
        sample_chunks(model.sample, guide, model.noise_shape(guide), SearchOptions(steps=8))
    with pytest.raises(ValueError, match="noise_shape"):
        sample_chunks(model.sample, guide, (T, 0, SIZE), NAIVE)


def test_color_correction_of_grey_frames_is_named():
    grey = torch.rand(1, SIZE, SIZE)
    model = small_model()
    opts = SearchOptions(mode="naive", num_chunks=2, steps=3, color_correction=0.5)
    with pytest.raises(ValueError, match="color_correction"):
        sample_chunks(model.sample, grey, model.noise_shape(grey), opts)
    assert model.calls == 0


def test_wrong_evaluator_output_is_named(guide):
    model = small_model()
    with pytest.raises(ValueError, match="evaluator"):
        run(model, guide, lambda frames, g: frames.mean(dim=(2, 3, 4)))


# --- decode, scoring cost, joining, report -------------------------------------------------------------


class LatentModel:
    """Samples a half-size 'latent' and decodes it by upsampling; records what decode and scoring see."""

    def __init__(self):
        self.pixels = small_model()
        self.decoded_batches, self.scored_shapes = [], []

    def sample(self, noise, guide, num_steps, on_eval):
        small_guide = torch.nn.functional.avg_pool2d(guide, 2)
        return self.pixels.sample(noise, small_guide, num_steps, on_eval)

    def decode(self, latent):
        self.decoded_batches.append(latent.shape[0])
        b, t = latent.shape[:2]
        up = torch.nn.functional.interpolate(latent.flatten(0, 1), scale_factor=2, mode="nearest")
        return up.view(b, t, *up.shape[1:])

    def evaluator(self, frames, guide):
        self.scored_shapes.append((tuple(frames.shape), tuple(guide.shape)))
        return -(frames - guide[:, None]).abs().mean(dim=(1, 2, 3, 4))


@pytest.mark.parametrize(("mode", "decodes_per_chunk"), [("search", 4 + 1), ("brute_force", 4), ("naive", 1)])
def test_decode_sees_one_candidate_and_scoring_is_reduced(guide, mode, decodes_per_chunk):
    model = LatentModel()
    costs = {"num_chunks": 2, "num_candidates": 4, "preview_steps": 2, "steps": 4, "batch_size": 3}
    opts = SearchOptions(mode=mode, **costs, score_frames=2, score_size=8)
    latent = (T, 3, SIZE // 2, SIZE // 2)
    result = sample_chunks(model.sample, guide, latent, opts, evaluator=model.evaluator, decode=model.decode)
    assert set(model.decoded_batches) == {1}
    assert len(model.decoded_batches) == 2 * decodes_per_chunk
    assert set(model.scored_shapes) == {((1, 2, 3, 8, 8), (1, 3, 8, 8))}
    assert result.frames.shape == (2 * T - 1, 3, SIZE, SIZE)
    assert result.times["decode"] > 0 and result.times["score"] > 0
    if mode == "brute_force":  # the kept chunk is the best candidate's, decoded once
        assert all(c.final_score == max(c.candidate_scores) for c in result.chunks)


def test_guide_frame_is_not_duplicated_unless_kept(guide):
    dropped = run(small_model(), guide, num_chunks=3)
    kept = run(small_model(), guide, num_chunks=3, keep_guide_frame=True)
    assert dropped.frames.shape[0] == 3 * T - 2 and kept.frames.shape[0] == 3 * T
    keep_rows = [i for i in range(3 * T) if i not in (T, 2 * T)]
    assert torch.equal(dropped.frames, kept.frames[keep_rows])


def test_color_correction_pulls_chunks_to_the_first_chunks_colours(guide):
    plain = run(small_model(), guide, mode="naive", num_chunks=3, keep_guide_frame=True)
    fixed = run(small_model(), guide, mode="naive", num_chunks=3, keep_guide_frame=True, color_correction=1.0)
    assert torch.equal(plain.frames[:T], fixed.frames[:T])  # the reference chunk is untouched
    ref_mean, ref_std = chunk_lab_statistics(fixed.frames[:T])
    for c in (1, 2):
        m_plain, s_plain = chunk_lab_statistics(plain.frames[c * T : (c + 1) * T])
        m_fixed, s_fixed = chunk_lab_statistics(fixed.frames[c * T : (c + 1) * T])
        assert (m_fixed - ref_mean).abs().sum() < 0.5 * (m_plain - ref_mean).abs().sum() + 0.5
        assert (s_fixed - ref_std).abs().sum() < (s_plain - ref_std).abs().sum() + 0.5


def test_report_is_json_and_complete(guide):
    result = run(small_model(), guide, num_chunks=2)
    report = json.loads(json.dumps(result.to_report()))
    assert report["chosen_seeds"] == result.chosen_seeds
    assert report["evaluations"] == 2 * (4 * 2 + 6)
    assert report["num_frames"] == 2 * T - 1 and report["frame_shape"] == [3, SIZE, SIZE]
    assert [len(c["candidate_scores"]) for c in report["chunks"]] == [4, 4]
    assert set(report["times"]) == {"preview", "full", "decode", "score", "join"}
    assert all(v >= 0 for v in report["times"].values())


# --- the testbed's known answer ------------------------------------------------------------------------


def test_testbed_lands_on_a_mixture_component(guide):
    model = small_model()
    g = guide[None]
    noise = draw_noise(model.noise_shape(guide), [0, 1, 2, 3, 4, 5])
    frames = model.sample(noise, g, 24, lambda: None)
    assert torch.equal(frames, model.sample(noise, g, 24, lambda: None))
    nearest = model.templates(g)[model.nearest_component(frames, g)]
    residual = (frames - nearest).std().item()
    assert residual < 2 * model.data_std  # an exact draw: template plus data_std noise (clamped)
    assert (frames[:, 0] - g).abs().mean() < 2 * model.data_std  # frame 0 is the guide
