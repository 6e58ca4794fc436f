"""Evaluators, scoring reductions and colour matching of the noise-search sampler."""

from __future__ import annotations

import pytest
import torch

from cascadev_core.noise_search import (
    ColorDrift,
    EmbeddingSimilarity,
    Flicker,
    SSIMToGuide,
    WeightedSum,
    chunk_lab_statistics,
    match_color,
    ssim_blend_evaluator,
)
from cascadev_core.noise_search.scoring import best_index, evaluate, prepare_frames, score_frame_indices
from cascadev_core.noise_search.testbed import make_guide


@pytest.fixture
def guide() -> torch.Tensor:
    return make_guide(16, 16, seed=3)[None]


def still(guide: torch.Tensor, frames: int = 3) -> torch.Tensor:
    """A video that repeats the guide, ``[1, frames, C, H, W]``."""
    return guide[:, None].expand(1, frames, *guide.shape[1:]).clone()


def test_every_evaluator_rates_the_guide_itself_best(guide):
    noise = torch.randn(1, 3, *guide.shape[1:], generator=torch.Generator().manual_seed(0))
    noisy = still(guide) + 0.15 * noise
    tinted = still(guide) * torch.tensor([1.0, 0.6, 0.6]).view(1, 1, 3, 1, 1)
    frames = torch.cat([still(guide), noisy.clamp(0, 1), tinted])
    for evaluator in (SSIMToGuide(), ColorDrift(), Flicker(), ssim_blend_evaluator()):
        scores = evaluator(frames, guide)
        assert scores.shape == (3,)
        assert int(scores.argmax()) == 0, evaluator.name
    assert SSIMToGuide()(still(guide), guide).item() == pytest.approx(1.0, abs=1e-4)
    assert ColorDrift()(still(guide), guide).item() == pytest.approx(0.0, abs=1e-4)
    assert Flicker()(still(guide), guide).item() == 0.0


def test_embedding_similarity_is_the_worst_frame_by_default(guide):
    frames = still(guide, 4)
    frames[0, 2] = 1 - frames[0, 2]  # one bad frame

    def embed(images):
        return images.flatten(1) - 0.5

    per_frame = EmbeddingSimilarity(embed).per_frame(frames, guide)[0]
    assert per_frame[[0, 1, 3]].tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert EmbeddingSimilarity(embed)(frames, guide).item() == pytest.approx(per_frame.min().item())
    mean = EmbeddingSimilarity(embed, reduction="mean")(frames, guide)
    assert mean.item() == pytest.approx(per_frame.mean().item())
    with pytest.raises(ValueError, match="embed"):
        EmbeddingSimilarity(lambda images: images.mean())(frames, guide)


def test_weighted_sum_adds_weighted_scores(guide):
    frames = torch.rand(2, 3, *guide.shape[1:], generator=torch.Generator().manual_seed(1))
    combo = WeightedSum([(SSIMToGuide(), 0.5), (Flicker(), 2.0)])
    expected = 0.5 * SSIMToGuide()(frames, guide) + 2.0 * Flicker()(frames, guide)
    assert torch.allclose(combo(frames, guide), expected)
    assert combo.name == "0.5*ssim + 2*flicker"
    assert ssim_blend_evaluator(flicker=0).name == "1*ssim + 1*color_drift"


def test_evaluator_output_is_checked_and_best_index_ignores_nan(guide):
    with pytest.raises(ValueError, match="evaluator"):
        evaluate(lambda f, g: torch.zeros(3), still(guide), guide)
    assert evaluate(lambda f, g: torch.tensor([0.25]), still(guide), guide) == [0.25]
    assert best_index([0.1, float("nan"), 0.3, 0.3]) == 2
    assert best_index([float("nan")] * 2) == 0


def test_scoring_subset_keeps_the_last_frame_and_shrinks_the_long_side():
    assert score_frame_indices(10, None).tolist() == list(range(10))
    assert score_frame_indices(10, 1).tolist() == [9]
    assert score_frame_indices(10, 3).tolist() == [0, 4, 9]
    assert score_frame_indices(4, 8).tolist() == [0, 1, 2, 3]
    frames = torch.rand(2, 10, 3, 32, 48)
    small = prepare_frames(frames, 2, 24)
    assert small.shape == (2, 2, 3, 16, 24)
    assert torch.equal(prepare_frames(frames, None, None), frames)
    assert torch.equal(prepare_frames(frames, None, 64), frames)  # never upscales


def test_match_color_moves_lab_statistics_to_the_reference(guide):
    video = still(guide, 2)[0]
    warm = (video * torch.tensor([1.0, 0.7, 0.5]).view(1, 3, 1, 1)).clamp(0, 1)
    ref_mean, ref_std = chunk_lab_statistics(video)
    assert torch.allclose(match_color(warm, ref_mean, ref_std, strength=0.0), warm, atol=2e-3)
    fixed_mean, fixed_std = chunk_lab_statistics(match_color(warm, ref_mean, ref_std, strength=1.0))
    warm_mean, _ = chunk_lab_statistics(warm)
    assert (fixed_mean - ref_mean).abs().max() < 0.2 * (warm_mean - ref_mean).abs().max()
    assert torch.allclose(fixed_std, ref_std, rtol=0.15, atol=1.0)
    with pytest.raises(ValueError, match="RGB"):
        match_color(warm[:, :1], ref_mean, ref_std)
