"""Recipe weights of the effnet fixture: splitmix64, per-key sha256, mismatch reporting, stored mapper copies."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from cascadev_core import reference_recipes as recipes

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def meta(reference_dir):
    return json.loads((reference_dir / "effnet_tiny.json").read_text())


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
        t = recipes.recipe_tensor(seed, k, tuple(spec[k]["shape"]))
        assert recipes.tensor_sha256(t) == spec[k]["sha256"], k


def test_splitmix64_matches_scalar_definition():
    seed = recipes.recipe_key_seed(7, "x")
    mask = (1 << 64) - 1
    want = []
    for i in range(5):
        z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        want.append((z >> 11) * 2.0**-53)
    assert recipes.splitmix64_uniform(seed, 5).tolist() == want


def test_recipe_sha_mismatch_is_reported(meta):
    spec = {"mapper.0.weight": dict(meta["state_dict_keys"]["mapper.0.weight"], sha256="0" * 64)}
    with pytest.raises(ValueError, match="mapper.0.weight"):
        recipes.recipe_state_dict(spec, meta["recipe_base_seed"])


def test_recipe_has_no_rule_for_unknown_keys():
    with pytest.raises(ValueError, match="no rule for key 'x.scale'"):
        recipes.recipe_tensor(0, "x.scale", (3,))


def test_recipe_encoder_equals_stored_mapper_copies(reference_dir):
    encoder = recipes.recipe_encoder(reference_dir / "effnet_tiny.json")  # verifies every sha256
    ref = load_file(str(reference_dir / "effnet_tiny.safetensors"))
    for k in ("mapper.0.weight", "mapper.1.running_mean", "mapper.1.running_var"):
        assert torch.equal(encoder.state_dict()[k], ref[k]), k
    assert not any(p.requires_grad for p in encoder.parameters())
