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


def flat(values: list[float], size: int = 16) -> torch.Tensor:
    """A video of flat grey frames, ``[1, len(values), 3, size, size]``."""
    return torch.stack([torch.full((3, size, size), v) for v in values])[None]


def test_ssim_of_flat_images_is_the_luminance_term():
    """Flat images have no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = 0.01^2 (Wang et al. 2004);
    up to float32 rounding of the local variances against C2 = 0.03^2."""
    c1 = 0.01**2
    guide = torch.full((1, 3, 16, 16), 0.5)
    per_frame = SSIMToGuide(window_size=5).per_frame(flat([0.5, 0.3, 0.9]), guide)[0]
    expected = [(2 * 0.5 * v + c1) / (0.5**2 + v**2 + c1) for v in (0.5, 0.3, 0.9)]
    assert per_frame.tolist() == pytest.approx(expected, abs=5e-4)
    assert SSIMToGuide(window_size=5, reduction="min")(flat([0.5, 0.3, 0.9]), guide).item() == pytest.approx(
        min(expected), abs=5e-4
    )


def test_color_drift_of_black_and_white_is_the_lightness_range():
    """Black is L* = 0, white L* = 100, both with a* = b* = 0 and no spread: a drift of 100 / 100 = 1."""
    black = torch.zeros(1, 3, 8, 8)
    assert ColorDrift()(flat([1.0, 0.0], 8), black).tolist() == pytest.approx([-0.5], abs=1e-3)  # mean of -1, 0
    assert ColorDrift(reduction="min")(flat([1.0, 0.0], 8), black).item() == pytest.approx(-1.0, abs=1e-3)


def test_flicker_of_flat_frames_is_the_mean_grey_step():
    guide = torch.full((1, 3, 8, 8), 0.2)
    frames = flat([0.5, 0.4, 0.8], 8)
    assert Flicker()(frames, guide).item() == pytest.approx(-(0.3 + 0.1 + 0.4) / 3)
    assert Flicker(include_guide=False)(frames, guide).item() == pytest.approx(-(0.1 + 0.4) / 2)
    assert Flicker(reduction="min")(frames, guide).item() == pytest.approx(-0.4)


def test_embedding_similarity_is_the_worst_frame_by_default(guide):
    frames = still(guide, 4)
    frames[0, 2] = 1 - frames[0, 2]  # one bad frame

    def embed(images):
        return images.flatten(1) - 0.5

    # the inverted frame embeds to 0.5 - g = -(g - 0.5): cosine -1 with the guide; the others +1
    per_frame = EmbeddingSimilarity(embed).per_frame(frames, guide)[0]
    assert per_frame.tolist() == pytest.approx([1.0, 1.0, -1.0, 1.0], abs=1e-5)
    assert EmbeddingSimilarity(embed)(frames, guide).item() == pytest.approx(-1.0, abs=1e-5)
    mean = EmbeddingSimilarity(embed, reduction="mean")(frames, guide)
    assert mean.item() == pytest.approx((1 + 1 - 1 + 1) / 4, abs=1e-5)
    with pytest.raises(ValueError, match="embed"):
        EmbeddingSimilarity(lambda images: images.mean())(frames, guide)


class Constant:
    """An evaluator that returns fixed scores, whatever the frames."""

    def __init__(self, name, scores):
        self.name, self.scores = name, torch.tensor(scores)

    def __call__(self, frames, guide):
        return self.scores


def test_weighted_sum_adds_weighted_scores(guide):
    frames = torch.rand(2, 3, *guide.shape[1:], generator=torch.Generator().manual_seed(1))
    combo = WeightedSum([(Constant("a", [0.2, -0.4]), 0.5), (Constant("b", [1.0, 0.5]), 2.0)])
    assert combo(frames, guide).tolist() == pytest.approx([0.5 * 0.2 + 2.0 * 1.0, 0.5 * -0.4 + 2.0 * 0.5])
    assert combo.name == "0.5*a + 2*b"
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
