"""Deterministic recipe weights of the reference fixtures (``effnet_tiny.json`` "weights_recipe").

The official effnet fixture does not ship its 21 M weights: it records a recipe (splitmix64 uniforms seeded per key
by sha256, one scaling rule per kind of tensor) and the sha256 of every resulting tensor.
:mod:`cascadev_core.reference_check` regenerates them here; nothing else in the library uses them.

Public API:

* :func:`splitmix64_uniform`, :func:`recipe_key_seed`, :func:`recipe_tensor` - one tensor of the recipe.
* :func:`tensor_sha256` - the recorded checksum of a tensor.
* :func:`recipe_state_dict` - every tensor of a recipe spec, sha256-verified.
* :func:`recipe_encoder` - an :class:`~cascadev_core.effnet.EfficientNetEncoder` with the recipe weights.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .checkpoint import format_key_list
from .effnet import EfficientNetEncoder, load_effnet_state_dict

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64_uniform(seed: int, n: int) -> np.ndarray:
    """``u[i]``, i < n: splitmix64 of ``seed + (i+1) * golden`` (uint64, wrapping) as float64 in [0, 1)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def recipe_key_seed(base_seed: int, key: str) -> int:
    """``int.from_bytes(sha256(f"{base_seed}:{key}").digest()[:8], "little")``."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}:{key}".encode()).digest()[:8], "little")


def recipe_tensor(base_seed: int, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """One recipe tensor of ``shape`` (float32; int64 zeros for ``num_batches_tracked``), computed in float64.

    Conv weights ``[O, I, kH, kW]``: ``(2u - 1) * sqrt(3 / fan_in)``; ``running_mean``, ``bias``: ``0.1 (2u - 1)``;
    ``running_var``: ``1 + 0.5 u``; other ``weight``: ``1 + 0.1 (2u - 1)``. Any other key raises ``ValueError``.
    """
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    n = int(np.prod(shape, dtype=np.int64))
    u = splitmix64_uniform(recipe_key_seed(base_seed, key), n)
    w = 2.0 * u - 1.0
    if len(shape) == 4:
        fan_in = shape[1] * shape[2] * shape[3]
        v = w * math.sqrt(3) / math.sqrt(fan_in)
    elif key.endswith("running_mean"):
        v = 0.1 * w
    elif key.endswith("running_var"):
        v = 1.0 + 0.5 * u
    elif key.endswith("weight"):
        v = 1.0 + 0.1 * w
    elif key.endswith("bias"):
        v = 0.1 * w
    else:
        raise ValueError(f"recipe: no rule for key {key!r} with shape {shape}")
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def tensor_sha256(t: torch.Tensor) -> str:
    """sha256 of the tensor's little-endian bytes (float32 / int64 as stored)."""
    a = t.detach().cpu().contiguous().numpy()
    return hashlib.sha256(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()


def recipe_state_dict(spec: Mapping[str, Mapping], base_seed: int, verify: bool = True) -> dict[str, torch.Tensor]:
    """Regenerate every recipe tensor of ``spec`` (``{key: {"shape", "sha256"?}}``, as in ``effnet_tiny.json``).

    With ``verify`` each tensor's sha256 is compared with the recorded one; a mismatch raises ``ValueError``.
    """
    sd = {}
    bad = []
    for key, info in spec.items():
        t = recipe_tensor(base_seed, key, tuple(info["shape"]))
        if verify and info.get("sha256") and tensor_sha256(t) != info["sha256"]:
            bad.append(key)
        sd[key] = t
    if bad:
        raise ValueError(f"recipe weights: sha256 mismatch for {len(bad)} keys: {format_key_list(sorted(bad))}")
    return sd


def recipe_encoder(spec_json: str | Path, verify: bool = True) -> EfficientNetEncoder:
    """:class:`EfficientNetEncoder` with the weights of an ``effnet_tiny.json``-style recipe file (strict load)."""
    meta = json.loads(Path(spec_json).read_text())
    sd = recipe_state_dict(meta["state_dict_keys"], int(meta["recipe_base_seed"]), verify=verify)
    return load_effnet_state_dict(EfficientNetEncoder(), sd, name=str(spec_json)).requires_grad_(False)
