"""Window / tile plans, blending accumulator, padding and the error messages of too-small inputs."""

from __future__ import annotations

import pytest
import torch

from cascadev_core.refine import WindowedDenoiser
from cascadev_core.tiling import (
    Blender,
    axis_starts,
    crop_axis,
    pad_axis,
    plan_axis,
    plan_tiles,
    plan_windows,
    scale_tiles,
    span_weights,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_official_plan_matches_readme():
    wins = plan_windows(12, 8)
    assert [w.start for w in wins] == [0, 4]
    assert wins[0].weight is None  # overwrite
    assert wins[1].weight.tolist() == [0.0, 0.3333333432674408, 0.6666666865348816, 1.0, 1.0, 1.0, 1.0, 1.0]
    tiles = plan_tiles(20, 32, 16)
    assert sorted({t.rows.start for t in tiles}) == [0, 4]
    assert sorted({t.cols.start for t in tiles}) == [0, 12, 16]
    assert [(t.rows.start, t.cols.start) for t in tiles][:3] == [(0, 0), (0, 12), (0, 16)]  # row-major
    assert all(t.weight is None for t in tiles)
    assert axis_starts(256, 128, 96) == [0, 96, 128]  # README: released 128 tile on a 256 latent
    assert axis_starts(16, 16, 12) == [0]
    assert [w.start for w in plan_windows(8, 8)] == [0]
    assert [w.start for w in plan_windows(13, 8)] == [0, 4, 5]


def test_crossfade_small_overlap_overwrites():
    # overlap 1 (< 2) overwrites, as the official code does
    w = span_weights([(0, 8), (7, 15)], "crossfade")
    assert w[0] is None and w[1] is None


def test_feather_weights_partition_unity_and_positive():
    spans = plan_axis(40, 16, 12, "feather")
    total = torch.zeros(40)
    for s in spans:
        assert (s.weight > 0).all()
        total[s.slice] += s.weight
    # where exactly two spans overlap with a plain overlap, weights sum to 1
    assert torch.allclose(total[12:16], torch.ones(4))
    assert (total > 0).all()


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: plan_windows(5, 8), "frames"),
        (lambda: plan_tiles(12, 32, 16), "height"),
        (lambda: plan_tiles(32, 8, 16), "width"),
    ],
)
def test_too_small_inputs_name_the_input(call, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected at least"):
        call()


def test_bad_step_and_mode():
    with pytest.raises(ValueError, match="step"):
        axis_starts(32, 16, 17)
    with pytest.raises(ValueError, match="blend mode"):
        plan_tiles(32, 32, 16, mode="crossfade")


def pointwise(x: torch.Tensor, t: torch.Tensor, frames: int) -> torch.Tensor:
    """Output depends only on the same (frame, pixel) of the input: tiling must not change anything."""
    w = torch.linspace(-1, 1, x.shape[1] * 8).reshape(8, x.shape[1])
    return torch.tanh(torch.einsum("oc,nchw->nohw", w, x)) + t.view(-1, 1, 1, 1) / 1000


@pytest.mark.parametrize("window_blend", ["crossfade", "overwrite", "average", "feather"])
@pytest.mark.parametrize("tile_blend", ["overwrite", "average", "feather"])
@pytest.mark.parametrize("max_batch", [1, 5])
def test_windows_and_tiles_equal_untiled_on_pointwise_model(window_blend, tile_blend, max_batch):
    x = torch.randn(2 * 12, 20, 20, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500.0)
    whole = pointwise(x, t.expand(24), 12)[:, :4]
    wd = WindowedDenoiser(
        pointwise, 2, 12, 20, 32, window=8, tile=16, window_stride=3, tile_step=10,
        window_blend=window_blend, tile_blend=tile_blend, max_batch=max_batch,
    )  # fmt: skip
    assert torch.allclose(wd(x, t), whole, atol=1e-6, rtol=1e-6)


def test_pad_option_replicates_then_crops():
    x = torch.randn(5, 20, 12, 20, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(10.0)
    with pytest.raises(ValueError, match="height: expected at least 16"):
        WindowedDenoiser(pointwise, 1, 5, 12, 20, window=8, tile=16)
    for pad in ("replicate", "reflect"):
        wd = WindowedDenoiser(pointwise, 1, 5, 12, 20, window=8, tile=16, pad=pad)
        assert torch.allclose(wd(x, t), pointwise(x, t.expand(5), 5)[:, :4], atol=1e-6)


def test_fewer_frames_than_one_window_are_padded_and_trimmed_back_without_a_pad_option():
    x = torch.randn(2 * 3, 20, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.tensor(10.0)
    seen = []

    def model(inp, tt, frames):
        seen.append((inp.shape[0], frames))
        return pointwise(inp, tt, frames)

    wd = WindowedDenoiser(model, 2, 3, 16, 16, window=8, tile=16)
    assert torch.allclose(wd(x, t), pointwise(x, t.expand(6), 3)[:, :4], atol=1e-6)
    assert seen == [(8, 8), (8, 8)]  # each 3-frame video ran as one full 8-frame window


def test_pad_axis_modes():
    x = torch.arange(3.0)
    assert pad_axis(x, 0, 7, "replicate").tolist() == [0, 1, 2, 2, 2, 2, 2]
    assert pad_axis(x, 0, 7, "reflect").tolist() == [0, 1, 2, 1, 0, 1, 2]
    assert crop_axis(pad_axis(x, 0, 7, "reflect"), 0, 3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="pad"):
        pad_axis(x, 0, 7, "zeros")


def test_blender_modes_on_constant_pieces():
    out = torch.empty(1, 10)
    b = Blender(out, "average")
    b.add((..., slice(0, 6)), torch.full((1, 6), 2.0), torch.ones(6))
    b.add((..., slice(4, 10)), torch.full((1, 6), 4.0), torch.ones(6))
    assert b.result().tolist() == [[2, 2, 2, 2, 3, 3, 4, 4, 4, 4]]
    b = Blender(torch.zeros(1, 10), "overwrite")
    b.add((..., slice(0, 6)), torch.full((1, 6), 2.0))
    b.add((..., slice(4, 10)), torch.full((1, 6), 4.0))
    assert b.result().tolist() == [[2, 2, 2, 2, 4, 4, 4, 4, 4, 4]]
    with pytest.raises(ValueError, match="accumulator"):
        Blender(torch.zeros(3, dtype=torch.int64), "average")


def test_scale_tiles_to_pixels():
    tiles = plan_tiles(20, 32, 16, 12, "feather")
    px = scale_tiles(tiles, 8, "feather")
    assert [(t.rows.start, t.cols.start) for t in px] == [(t.rows.start * 8, t.cols.start * 8) for t in tiles]
    assert px[0].weight.shape == (128, 128)
