"""Tiled / sliced VAE decode equals one-shot decode; OOM fallback; streaming and preallocated outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cascadev_core import Interrupted
from cascadev_core.vae_decode import decode_latents, is_oom, iter_decode, to_uint8

pytestmark = pytest.mark.usefixtures("single_thread")


MIX = torch.linspace(-0.5, 0.5, 12).reshape(3, 4)


def local_decode(z: torch.Tensor) -> torch.Tensor:
    """Pointwise in latent space (1x1 mix, tanh), nearest x8 upsampling: the same pixels whatever the tiling."""
    return F.interpolate(torch.tanh(torch.einsum("ck,nkhw->nchw", MIX, z)), scale_factor=8, mode="nearest")


@pytest.fixture(scope="module")
def latents():
    return torch.randn(2, 4, 6, 20, 28, generator=torch.Generator().manual_seed(0))


def one_shot(lat: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = lat.shape
    pix = local_decode(lat.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return pix.reshape(b, t, 3, h * 8, w * 8).permute(0, 2, 1, 3, 4)


@pytest.mark.parametrize("blend", ["feather", "average", "overwrite"])
@pytest.mark.parametrize(("tile", "overlap", "frames"), [(12, 4, 4), (8, 2, 3), (None, 0, 6)])
def test_tiled_sliced_decode_equals_one_shot(latents, blend, tile, overlap, frames):
    got = decode_latents(local_decode, latents, tile=tile, overlap=overlap, blend=blend, frames_per_call=frames)
    assert got.shape == (2, 3, 6, 160, 224)
    assert torch.allclose(got, one_shot(latents), atol=1e-6)


def test_decoder_sees_bounded_inputs(latents):
    shapes = []

    def recording(z):
        shapes.append(tuple(z.shape))
        return local_decode(z)

    decode_latents(recording, latents, tile=12, overlap=4, frames_per_call=4)
    assert max(s[0] for s in shapes) == 4 and max(s[2] for s in shapes) == 12 and max(s[3] for s in shapes) == 12


def test_oom_retry_shrinks_tiles_then_frames(latents):
    calls, steps = [], []

    def limited(z):
        calls.append(tuple(z.shape))
        if z.numel() > 2 * 4 * 10 * 10:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return local_decode(z)

    got = decode_latents(limited, latents, min_tile=8, on_step=lambda d, t: steps.append((d, t)))
    assert torch.allclose(got, one_shot(latents), atol=1e-6)
    assert calls[0] == (4, 4, 20, 28)  # whole frames first
    assert calls[1] == (4, 4, 14, 14)  # then half-size tiles
    assert all(s[0] <= 2 for s in calls[3:])  # then fewer frames
    assert steps[-1][0] == steps[-1][1]  # progress total re-estimated after the shrink


def test_oom_gives_up_below_min_tile(latents):
    def never(z):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError, match="even with"):
        decode_latents(never, latents, min_tile=16)


def test_other_backend_oom_text_and_real_errors():
    assert is_oom(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert is_oom(torch.OutOfMemoryError("x"))
    assert not is_oom(RuntimeError("shape mismatch"))

    def broken(z):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        decode_latents(broken, torch.zeros(1, 4, 2, 8, 8))


def test_streaming_generator_and_uint8_output(latents):
    parts = list(iter_decode(local_decode, latents, frames_per_call=4, tile=12, overlap=4))
    assert [(v, f0, p.shape[1]) for v, f0, p in parts] == [(0, 0, 4), (0, 4, 2), (1, 0, 4), (1, 4, 2)]
    out = torch.empty(2, 3, 6, 160, 224, dtype=torch.uint8)
    got = decode_latents(local_decode, latents, out=out, tile=12, overlap=4)
    assert got is out and torch.equal(out, to_uint8(one_shot(latents)))
    half = decode_latents(local_decode, latents, out_dtype=torch.float16)
    assert half.dtype == torch.float16
    with pytest.raises(ValueError, match="out"):
        decode_latents(local_decode, latents, out=torch.empty(2, 3, 6, 8, 8))


def test_cancellation(latents):
    n = []
    with pytest.raises(Interrupted):
        decode_latents(
            local_decode, latents, tile=12, on_step=lambda d, t: n.append(d), should_stop=lambda: len(n) >= 2
        )
    assert n == [1, 2]


def test_bad_arguments(latents):
    with pytest.raises(ValueError, match="latents"):
        decode_latents(local_decode, latents[0])
    with pytest.raises(ValueError, match="blend"):
        decode_latents(local_decode, latents, blend="crossfade")
    with pytest.raises(ValueError, match="decode output"):
        decode_latents(lambda z: z[:, :3, :5], latents)


def test_decoding_into_a_preallocated_output_adds_only_one_slice(latents):
    """``out=``: the pixels go slice by slice into the caller's tensor; no full-size copy of the video is made
    (the node decodes into ComfyUI's IMAGE tensor this way and clamps it in place)."""
    from cascadev_core.live_bytes import LiveTensorBytes

    out = torch.empty(2, 3, 6, 160, 224)
    video_bytes = out.numel() * out.element_size()
    with torch.no_grad(), LiveTensorBytes() as meter:
        decode_latents(local_decode, latents, out=out, frames_per_call=2)
    assert meter.peak < video_bytes / 2, (meter.peak, video_bytes)  # a slice is a third of a video here
    with torch.no_grad(), LiveTensorBytes() as meter:
        decode_latents(local_decode, latents, frames_per_call=2)
    assert meter.peak >= video_bytes  # without out= the output itself is allocated inside
