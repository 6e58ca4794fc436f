"""The weight-free evaluator that keeps motion: closed-form terms, and its preferences on constructed videos whose
right order is given by how they are made (not by the evaluator)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cascadev_core.noise_search import (
    EmbeddingSimilarity,
    FaithfulMotion,
    default_evaluator,
    ssim_blend_evaluator,
    weight_free_evaluator,
)
from cascadev_core.noise_search.testbed import make_guide

T = 8


pytestmark = pytest.mark.usefixtures("single_thread")  # stable timings; the results do not depend on it


def lab_lightness(v: float) -> float:
    """CIE L* of the sRGB grey (v, v, v), from the sRGB and CIELAB definitions (D65 white)."""
    linear = v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    return 116 * linear ** (1 / 3) - 16 if linear > (6 / 29) ** 3 else linear * (29 / 3) ** 3


# --- closed forms ----------------------------------------------------------------------------------------


def test_frozen_copy_has_no_error_no_motion_and_scores_minus_the_still_penalty():
    guide = make_guide(32, 32, seed=3)[None]
    frozen = guide[:, None].expand(1, T, 3, 32, 32)
    terms = FaithfulMotion().terms(frozen, guide)
    for name in ("faithfulness", "colour_drift", "incoherence", "motion"):
        assert terms[name].item() == pytest.approx(0.0, abs=1e-5), name
    assert terms["stillness"].item() == pytest.approx(1.0, abs=1e-4)
    assert FaithfulMotion(still_penalty=0.25)(frozen, guide).item() == pytest.approx(-0.25, abs=1e-4)


def test_grey_flicker_terms_are_the_grey_level_steps():
    """Flat grey frames: every patch matches everywhere, so each term is a difference of grey levels."""
    levels = [0.5, 0.6, 0.4, 0.6, 0.4]  # the guide, then the frames
    guide = torch.full((1, 3, 20, 20), levels[0])
    frames = torch.stack([torch.full((3, 20, 20), v) for v in levels[1:]])[None]
    terms = FaithfulMotion().terms(frames, guide)
    steps = [abs(b - a) for a, b in zip(levels, levels[1:])]
    assert terms["incoherence"].item() == pytest.approx(sum(steps) / 4, abs=1e-5)
    assert terms["faithfulness"].item() == pytest.approx(sum(abs(v - 0.5) for v in levels[1:]) / 4, abs=1e-5)
    lightness = [abs(lab_lightness(v) - lab_lightness(0.5)) / 100 for v in levels[1:]]
    assert terms["colour_drift"].item() == pytest.approx(sum(lightness) / 4, abs=2e-4)
    assert terms["motion"].item() == 0.0  # a flat image explains nothing by moving


def test_sliding_window_moves_one_pixel_per_frame():
    """Frames are 32x32 windows sliding 1 pixel a frame over a larger texture: motion = (T-1)/32 of the width,
    nothing incoherent but the column that enters."""
    gen = torch.Generator().manual_seed(0)
    texture = F.avg_pool2d(torch.rand(1, 3, 40, 48, generator=gen), 3, stride=1, padding=1)  # smooth-ish
    frames = torch.stack([texture[0, :, 4:36, 4 + t : 36 + t] for t in range(T)])[None]
    guide = frames[:, 0]
    terms = FaithfulMotion(size=32).terms(frames, guide)
    assert terms["motion"].item() == pytest.approx((T - 1) / 32, rel=0.2)
    assert terms["stillness"].item() == 0.0
    assert terms["incoherence"].item() < 0.02
    still = FaithfulMotion(size=32).terms(guide[:, None].expand(1, T, 3, 32, 32), guide)
    assert terms["faithfulness"].item() < 0.02 and still["faithfulness"].item() < 1e-6


# --- preferences on constructed videos ----------------------------------------------------------------------


def videos(size: int) -> dict[str, torch.Tensor]:
    """Constructed videos ``[1, T, 3, size, size]`` around one guide; their right order is by construction."""
    guide = make_guide(size, size, seed=3)[None]
    gen = torch.Generator().manual_seed(0)
    progress = torch.linspace(0, 1, T).view(1, T, 1, 1, 1)
    tint = torch.tensor([0.9, 0.3, 0.1]).view(1, 1, 3, 1, 1)

    def rolled(dims):
        return torch.stack([torch.roll(guide[0], (t,) * len(dims), dims) for t in range(T)])[None]

    def sub_pixel(total_px):  # bilinear translation by a fraction of a pixel
        out = []
        for t in range(T):
            theta = torch.tensor([[1.0, 0.0, 2 * total_px * t / (T - 1) / size], [0.0, 1.0, 0.0]])[None]
            grid = F.affine_grid(theta, list(guide.shape), align_corners=False)
            out.append(F.grid_sample(guide, grid, padding_mode="border", align_corners=False)[0])
        return torch.stack(out)[None]

    moving = rolled((-1,))
    sign = torch.tensor([(-1.0) ** t for t in range(T)]).view(1, T, 1, 1, 1)
    return {
        "guide": guide,
        "moving": moving,  # the guide rolled one pixel a frame: same content and colours, in motion
        "moving diagonally": rolled((-1, -2)),
        "frozen": guide[:, None].expand(1, T, 3, size, size).clone(),
        "near-still": sub_pixel(0.5),  # half a pixel over the whole chunk
        "drift 0.3": moving * (1 - 0.3 * progress) + tint * 0.3 * progress,  # colours leave the guide
        "drift 0.6": moving * (1 - 0.6 * progress) + tint * 0.6 * progress,
        "noise 0.05": (moving + 0.05 * torch.randn(moving.shape, generator=gen)).clamp(0, 1),
        "noise 0.15": (moving + 0.15 * torch.randn(moving.shape, generator=gen)).clamp(0, 1),
        "flicker 0.1": (moving * (1 + 0.1 * sign)).clamp(0, 1),
    }


@pytest.mark.parametrize("size", [16, 32, 48])
def test_moving_faithful_video_beats_frozen_still_drifting_and_noisy_ones(size):
    v = videos(size)
    guide = v.pop("guide")
    names = list(v)
    scores = dict(zip(names, FaithfulMotion()(torch.cat([v[n] for n in names]), guide).tolist()))
    for moving in ("moving", "moving diagonally"):
        for worse in ("frozen", "near-still", "drift 0.3", "drift 0.6", "noise 0.05", "noise 0.15", "flicker 0.1"):
            assert scores[moving] > scores[worse], (size, moving, worse, scores)
    assert scores["drift 0.3"] > scores["drift 0.6"]  # more drift, lower
    assert scores["noise 0.05"] > scores["noise 0.15"]  # more noise, lower


def test_scores_do_not_depend_on_the_batch():
    v = videos(32)
    guide = v.pop("guide")
    batch = torch.cat(list(v.values()))
    together = FaithfulMotion()(batch, guide)
    alone = torch.cat([FaithfulMotion()(video, guide) for video in v.values()])
    assert torch.allclose(together, alone, atol=1e-6)


def test_ssim_blend_prefers_the_frozen_copy():
    """Why the default changed: SSIM + colour + flicker ranks the frozen copy above the faithful moving video."""
    v = videos(32)
    blend = ssim_blend_evaluator()
    assert blend(v["frozen"], v["guide"]).item() > blend(v["moving"], v["guide"]).item()


# --- defaults and errors ---------------------------------------------------------------------------------


def test_default_evaluator_is_clip_min_with_an_embedder_else_faithful_motion():
    def embed(images):
        return images.flatten(1)

    clip = default_evaluator(embed)
    assert isinstance(clip, EmbeddingSimilarity) and clip.reduction == "min" and clip.embed is embed
    assert isinstance(default_evaluator(), FaithfulMotion)
    assert isinstance(weight_free_evaluator(), FaithfulMotion)
    assert weight_free_evaluator(still_penalty=0.3).still_penalty == 0.3
    with pytest.raises(TypeError, match="embed"):
        default_evaluator(embed=3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"size": 8}, "size"),
        ({"motion_target": 0}, "motion_target"),
        ({"search_radius": 1.5}, "search_radius"),
        ({"search_radius": 0.05, "motion_target": 0.1}, "search_radius"),
        ({"still_penalty": -1}, "still_penalty"),
    ],
)
def test_bad_settings_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FaithfulMotion(**kwargs)


def test_mismatched_frames_and_guide_are_named():
    with pytest.raises(ValueError, match="guide"):
        FaithfulMotion()(torch.rand(1, 2, 3, 16, 16), torch.rand(1, 3, 16, 20))
