"""Effnet encoder: torchvision backbone, key set, strict loading (meta build), preprocessing, reference parity."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from cascadev_core import effnet
from cascadev_core.reference_recipes import recipe_encoder

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def meta(reference_dir):
    return json.loads((reference_dir / "effnet_tiny.json").read_text())


@pytest.fixture(scope="module")
def ref(reference_dir):
    return load_file(str(reference_dir / "effnet_tiny.safetensors"))


@pytest.fixture(scope="module")
def encoder(reference_dir):
    return recipe_encoder(reference_dir / "effnet_tiny.json")  # verifies every sha256


def test_backbone_is_torchvision_features_only():
    from torchvision.models import efficientnet

    model = effnet.EfficientNetEncoder()
    assert isinstance(model.backbone[1][0], efficientnet.FusedMBConv)
    assert isinstance(model.backbone[4][0], efficientnet.MBConv)
    assert [name for name, _ in model.named_children()] == ["backbone", "mapper"]
    assert not model.training and not model.backbone[6][0].stochastic_depth.training


def test_key_set_and_shapes_equal_json(meta):
    sd = effnet.EfficientNetEncoder().state_dict()
    spec = meta["state_dict_keys"]
    assert list(sd) == list(spec)
    for k, v in sd.items():
        assert list(v.shape) == spec[k]["shape"], k
        assert str(v.dtype).removeprefix("torch.") == spec[k]["dtype"], k
    assert sum(v.numel() for v in sd.values()) == meta["num_parameters_and_buffers"]


def test_preprocessing_equals_reference(ref):
    assert torch.equal(effnet.preprocess_frames(ref["frames"]), ref["frames_normalized"])


def test_parity_with_reference_latents(encoder, ref):
    lat = effnet.encode_video(encoder, ref["frames"])
    assert lat.shape == ref["effnet_latents"].shape == (1, 16, 2, 2, 3)
    err = (lat - ref["effnet_latents"]).abs().max().item()
    assert err <= 1e-5, err
    # several frames per call: other conv kernels, same numbers to ~1e-7
    lat2 = effnet.encode_video(encoder, ref["frames"], frames_per_call=2)
    assert (lat2 - ref["effnet_latents"]).abs().max().item() <= 1e-5


def test_encode_video_progress_and_shape_errors(encoder, ref):
    seen = []
    effnet.encode_video(encoder, ref["frames"], on_step=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]
    with pytest.raises(ValueError, match="video"):
        effnet.encode_video(encoder, ref["frames"][:, :2])


def test_strict_loading_from_file(tmp_path, encoder):
    path = tmp_path / "effnet_encoder.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path))
    loaded = effnet.load_effnet_encoder(path)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded(x), encoder(x))
    copied = effnet.load_effnet_state_dict(effnet.EfficientNetEncoder(), encoder.state_dict())
    assert torch.equal(copied(x), encoder(x))
    half = effnet.load_effnet_encoder(path, dtype=torch.float16)
    assert all(t.dtype == torch.float16 for t in half.parameters()) and not half.training

    sd = dict(encoder.state_dict())
    sd.pop("backbone.3.0.block.0.0.weight")
    sd["extra.weight"] = torch.zeros(1)
    sd["mapper.0.weight"] = torch.zeros(8, 1280, 1, 1)
    with pytest.raises(ValueError) as err:
        effnet.load_effnet_state_dict(effnet.EfficientNetEncoder(), sd, "bad.safetensors")
    msg = str(err.value)
    assert "backbone.3.0.block.0.0.weight" in msg and "extra.weight" in msg and "mapper.0.weight" in msg


def test_wrapper_prefix_is_stripped(encoder):
    sd = {f"effnet.{k}": v for k, v in encoder.state_dict().items()}
    model = effnet.load_effnet_state_dict(effnet.EfficientNetEncoder(), sd)
    assert torch.equal(model.state_dict()["mapper.0.weight"], encoder.state_dict()["mapper.0.weight"])


def test_encode_video_memory_does_not_grow_with_the_video(encoder):
    """Only one call's frames are converted and resized at a time: encoding 8 large frames to a small size peaks
    where 2 frames do (a whole-video float copy would add 12.6 MB per 1024x1024 frame)."""
    from cascadev_core.live_bytes import LiveTensorBytes

    def peak(frames: int) -> int:
        video = torch.rand(1, 3, frames, 1024, 1024, generator=torch.Generator().manual_seed(0))
        with torch.no_grad(), LiveTensorBytes() as meter:
            effnet.encode_video(encoder, video, size=(64, 64), value_range=(0.0, 1.0))
        return meter.peak

    one_frame = 3 * 1024 * 1024 * 4
    short, long = peak(2), peak(8)
    assert long - short < one_frame, (short, long)
