"""Per-candidate seeds and the initial noise they produce.

Every candidate owns a seed and a CPU ``torch.Generator``, so the noise of a candidate is the same whether
it is drawn alone or stacked into a batch with others, and the same on every machine (like ComfyUI, noise
is drawn on the CPU and then moved to the model's device).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SEED_MODULUS = 2**64
_MASK = SEED_MODULUS - 1


def candidate_seed(base_seed: int, chunk_index: int, candidate_index: int) -> int:
    """Seed of candidate ``candidate_index`` of chunk ``chunk_index``, in ``0..2**64-1``.

    Candidate 0 of chunk 0 uses the base seed itself (``base_seed mod 2**64``), so a one-chunk naive run draws
    the noise a plain sampler would draw with that seed. Every other candidate uses
    ``splitmix64(splitmix64(splitmix64(base_seed) ^ chunk_index) ^ candidate_index)``: seeds of different
    (chunk, candidate) pairs, and of neighbouring base seeds, are unrelated, so incrementing the base seed
    gives a fresh set of candidates rather than the same ones shifted by one. Naive mode uses candidate 0 of
    every chunk, so a search with one candidate and a naive run with the same base seed draw the same noises.
    """
    if chunk_index == 0 and candidate_index == 0:
        return base_seed % SEED_MODULUS
    mixed = _splitmix64(_splitmix64(base_seed % SEED_MODULUS) ^ chunk_index)
    return _splitmix64(mixed ^ candidate_index)


def candidate_seeds(base_seed: int, chunk_index: int, count: int) -> list[int]:
    """Seeds of candidates ``0..count-1`` of one chunk."""
    return [candidate_seed(base_seed, chunk_index, i) for i in range(count)]


def _splitmix64(x: int) -> int:
    """The splitmix64 finaliser (Steele et al. 2014): a bijective 64-bit mix."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def draw_noise(
    shape: Sequence[int],
    seeds: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise, one slice per seed.

    Args:
        shape: shape of one candidate's noise (no batch dimension), e.g. ``[T, C, h, w]`` of a video latent.
        seeds: one seed per candidate.
        device, dtype: where and how the noise is returned; it is always drawn in float32 on the CPU.

    Returns:
        ``[len(seeds), *shape]``; slice ``i`` is bitwise what ``draw_noise(shape, [seeds[i]])`` returns.
    """
    slices = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)) for seed in seeds]
    return torch.stack(slices).to(device=device, dtype=dtype)
