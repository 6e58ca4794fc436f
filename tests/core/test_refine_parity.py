"""The refine loop against the official reference (tiny DiT), plus determinism, batching and cancellation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cascadev_core import Interrupted
from cascadev_core.checkpoint import load_dit
from cascadev_core.conditioning import conditioning_frames, from_frames, model_input, resize_path_conditioning
from cascadev_core.config import DiTConfig
from cascadev_core.refine import RefineOptions, WindowedDenoiser, refine

pytestmark = pytest.mark.usefixtures("single_thread")


STEPS = 8


@pytest.fixture(scope="module")
def ref(reference_dir):
    return load_file(str(reference_dir / "refine_loop.safetensors"))


@pytest.fixture(scope="module")
def dit(reference_dir):
    cfg = DiTConfig.from_reference_json(reference_dir / "dit_tiny.json", layout_name="grid_official_scaled")
    assert cfg.input_size == 16 and cfg.lats_per_vid == 8
    model, _ = load_dit(reference_dir / "dit_tiny.safetensors", config=cfg, dtype=torch.float32)
    return model


@pytest.fixture(scope="module")
def replay(ref, dit):
    """The official run replayed once: (output, {step: (eps, x)})."""
    steps: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    out = refine(
        dit,
        ref["cond_lowres"],
        lats_per_vid=8,
        input_size=16,
        noise=from_frames(ref["init_noise"], 1),
        step_noises=[from_frames(ref[f"step_noise.{i}"], 1) for i in range(STEPS)],
        callback=lambda info: steps.__setitem__(info["i"], (info["eps"], info["x"])),
    )
    return out, steps


def test_cond_upsampled_scaled(ref):
    got = conditioning_frames(ref["cond_lowres"])
    assert got.shape == ref["cond_upsampled_scaled"].shape
    assert (got - ref["cond_upsampled_scaled"]).abs().max().item() <= 1e-6


def test_step_eps_0(ref, replay):
    err = (replay[1][0][0] - ref["step_eps.0"]).abs().max().item()
    assert err <= 1e-5, err


def test_every_step_latents(ref, replay):
    for i in range(STEPS):
        want = ref[f"step_latents_after.{i}"]
        rel = (replay[1][i][1] - want).abs().max().item() / want.abs().max().item()
        assert rel <= 1e-5, (i, rel)


def test_output_latents(ref, replay):
    out = replay[0]
    assert out.shape == ref["output_latents"].shape == (1, 4, 12, 20, 32)
    err = (out - ref["output_latents"]).abs().max().item()
    assert err <= 1e-2, err


def step0_input(ref):
    sigma = torch.tensor(157.4072723388672)
    return model_input(ref["init_noise"] * sigma / (sigma**2 + 1) ** 0.5, ref["cond_upsampled_scaled"])


@pytest.mark.parametrize("max_batch", [2, 5, 12])
def test_batching_windows_and_tiles_gives_same_eps(ref, dit, max_batch):
    x, t = step0_input(ref), torch.tensor(999.0)
    one = WindowedDenoiser(dit, 1, 12, 20, 32, window=8, tile=16)(x, t)
    batched = WindowedDenoiser(dit, 1, 12, 20, 32, window=8, tile=16, max_batch=max_batch)
    assert batched.calls == -(-12 // max_batch)  # 2 windows x 6 tiles
    got = batched(x, t)
    assert (got - one).abs().max().item() <= 1e-5
    assert (got - ref["step_eps.0"]).abs().max().item() <= 1e-5


def test_seeded_run_is_bitwise_repeatable_and_batching_agrees(ref, dit):
    kw = dict(lats_per_vid=8, input_size=16, steps=2)
    a = refine(dit, ref["cond_lowres"], seed=123, **kw)
    b = refine(dit, ref["cond_lowres"], generator=torch.Generator().manual_seed(123), **kw)
    assert torch.equal(a, b)
    c = refine(dit, ref["cond_lowres"], seed=123, max_batch=6, **kw)
    assert (c - a).abs().max().item() <= 1e-5 * a.abs().max().item()
    d = refine(dit, ref["cond_lowres"], seed=124, **kw)
    assert not torch.equal(a, d)


def test_interrupted_promptly_and_progress_counts_model_calls(ref, dit):
    calls, seen = [], []

    def counting(x, t, frames):
        calls.append(x.shape[0])
        return dit(x, t, frames)

    with pytest.raises(Interrupted):
        refine(
            counting, ref["cond_lowres"], lats_per_vid=8, input_size=16, steps=3,
            on_step=lambda d, t: seen.append((d, t)), should_stop=lambda: len(calls) >= 3,
        )  # fmt: skip
    assert len(calls) == 3  # stopped before the 4th model call
    assert seen == [(1, 36), (2, 36), (3, 36)]  # 3 steps x 2 windows x 6 tiles, one unit per model call


def toy(x, t, frames):
    return torch.tanh(x[:, :8] * 0.5 + x[:, 4:12]) * (1 - t.view(-1, 1, 1, 1) / 2000)


def whole_video_refine(model, cond, sampler: str, steps: int, seed: int) -> torch.Tensor:
    """A slow reference: the sampler with the model on the whole video at once (no windows, no tiles, no blending),
    drawing its noises in the refine's order."""
    from cascadev_core import schedulers as S
    from cascadev_core.conditioning import SCALE_FACTOR

    z_ref = conditioning_frames(cond)
    n = z_ref.shape[0]
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn((n, 4, *z_ref.shape[-2:]), generator=gen)
    sch = S.official_schedule(steps)

    def eps(x_in, t):
        return model(model_input(x_in, z_ref), t.reshape(1).expand(n), n)[:, :4].float()

    x = S.sample(sampler, eps, z * sch.init_noise_sigma, sch, noise=S.generator_noise(gen))
    return from_frames(x, 1) / SCALE_FACTOR


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m", "euler_a"])
@pytest.mark.parametrize(("window_blend", "tile_blend"), [("average", "average"), ("feather", "feather")])
def test_other_samplers_and_blends_equal_the_whole_video_run_on_a_pointwise_model(sampler, window_blend, tile_blend):
    """``toy`` works pixel by pixel, so windows and tiles blended by any weights must give what one call on the
    whole video gives: an expectation that does not come from the windowing code."""
    cond = torch.randn(1, 16, 10, 5, 6, generator=torch.Generator().manual_seed(0))
    opts = RefineOptions(sampler=sampler, steps=3, window_blend=window_blend, tile_blend=tile_blend, tile_overlap=8)
    out = refine(toy, cond, lats_per_vid=4, input_size=16, options=opts, seed=0)
    expected = whole_video_refine(toy, cond, sampler, 3, seed=0)
    assert out.shape == expected.shape == (1, 4, 10, 20, 24)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5 * expected.abs().max()), (out - expected).abs().max()


def test_fp16_model_keeps_fp32_state():
    cond = torch.randn(1, 16, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    dtypes = []

    def half_model(x, t, frames):
        dtypes.append(x.dtype)
        return toy(x.float(), t, frames).half()

    out = refine(half_model, cond, lats_per_vid=4, input_size=16, steps=2, model_dtype=torch.float16)
    assert dtypes == [torch.float16, torch.float16] and out.dtype == torch.float32


def test_shape_errors_name_the_argument():
    cond = torch.randn(1, 16, 8, 4, 4)
    with pytest.raises(ValueError, match="cond_lowres"):
        refine(toy, cond[0], lats_per_vid=4, input_size=16)
    with pytest.raises(ValueError, match="noise"):
        refine(toy, cond, lats_per_vid=4, input_size=16, noise=torch.randn(1, 4, 8, 8, 8))
    with pytest.raises(ValueError, match=r"step_noises\[0\]"):
        refine(toy, cond, lats_per_vid=4, input_size=16, step_noises=[torch.randn(1, 4, 8, 8, 8)])
    with pytest.raises(ValueError, match="height"):
        refine(toy, cond[..., :3, :], lats_per_vid=4, input_size=16)
    with pytest.raises(ValueError, match="sampler"):
        refine(toy, cond, lats_per_vid=4, input_size=16, sampler="plms")
    out = refine(toy, cond[:, :, :3], lats_per_vid=4, input_size=16, pad="replicate", steps=1)
    assert out.shape == (1, 4, 3, 16, 16)
    short = refine(toy, cond[:, :, :3], lats_per_vid=4, input_size=16, steps=1)  # fewer frames than one window
    assert torch.equal(short, out)


def test_conditioning_layout_and_resize_path():
    cond = torch.randn(2, 16, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    frames = conditioning_frames(cond)
    assert frames.shape == (6, 16, 16, 20)  # frame-major: row b*T + t
    assert torch.equal(frames[4], conditioning_frames(cond[1:, :, 1:2])[0])
    noisy = torch.zeros(6, 4, 16, 20)
    x = model_input(noisy, frames)
    assert torch.equal(x[:, :4], noisy) and torch.equal(x[:, 4:], frames)  # noise first, conditioning second

    seen = []

    def encode(video):  # toy "VAE": 8x average pooling to 4 channels
        seen.append(tuple(video.shape))
        b, c, t, h, w = video.shape
        z = F.avg_pool2d(video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), 8)
        return from_frames(torch.cat([z, z[:, :1]], 1), b)

    video = torch.rand(1, 3, 2, 128, 96) * 2 - 1
    z_ref = resize_path_conditioning(video, encode)
    assert seen == [(1, 3, 2, 32, 24)]  # bilinear down x4 before the encoder
    assert z_ref.shape == (2, 4, 16, 12)  # encoder latent 4x3, up x4
