"""Effnet encoder: recipe weights (sha256), key set, strict loading, preprocessing and reference parity."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from cascadev_core import effnet

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def meta(reference_dir):
    return json.loads((reference_dir / "effnet_tiny.json").read_text())


@pytest.fixture(scope="module")
def ref(reference_dir):
    return load_file(str(reference_dir / "effnet_tiny.safetensors"))


@pytest.fixture(scope="module")
def encoder(reference_dir):
    return effnet.recipe_encoder(reference_dir / "effnet_tiny.json")  # verifies every sha256


def test_recipe_sha256_of_some_keys(meta):
    spec, seed = meta["state_dict_keys"], meta["recipe_base_seed"]
    keys = [
        "backbone.0.0.weight",  # conv
        "backbone.0.1.running_var",  # 1 + 0.5 u
        "backbone.4.0.block.2.fc1.bias",  # SE bias
        "backbone.4.0.block.1.0.weight",  # depthwise conv
        "backbone.7.1.weight",  # 1 + 0.1 w
        "mapper.1.running_mean",
        "mapper.1.num_batches_tracked",
    ]
    for k in keys:
        t = effnet.recipe_tensor(seed, k, tuple(spec[k]["shape"]))
        assert effnet.tensor_sha256(t) == spec[k]["sha256"], k


def test_splitmix64_matches_scalar_definition():
    seed = effnet.recipe_key_seed(7, "x")
    mask = (1 << 64) - 1
    want = []
    for i in range(5):
        z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        want.append((z >> 11) * 2.0**-53)
    assert effnet.splitmix64_uniform(seed, 5).tolist() == want


def test_recipe_sha_mismatch_is_reported(meta):
    spec = {"mapper.0.weight": dict(meta["state_dict_keys"]["mapper.0.weight"], sha256="0" * 64)}
    with pytest.raises(ValueError, match="mapper.0.weight"):
        effnet.recipe_state_dict(spec, meta["recipe_base_seed"])


def test_key_set_and_shapes_equal_json(meta):
    sd = effnet.EfficientNetEncoder().state_dict()
    spec = meta["state_dict_keys"]
    assert list(sd) == list(spec)
    for k, v in sd.items():
        assert list(v.shape) == spec[k]["shape"], k
        assert str(v.dtype).removeprefix("torch.") == spec[k]["dtype"], k
    assert sum(v.numel() for v in sd.values()) == meta["num_parameters_and_buffers"]


def test_mapper_recipe_equals_stored_copies(encoder, ref):
    for k in ("mapper.0.weight", "mapper.1.running_mean", "mapper.1.running_var"):
        assert torch.equal(encoder.state_dict()[k], ref[k]), k


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
