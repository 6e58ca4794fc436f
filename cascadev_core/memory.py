"""Memory estimates of one DiT call, and the window/tile batch that fits a memory budget.

One refine model call processes ``max_batch`` (window, tile) jobs, each ``window x (tile/p)^2`` tokens. Inside a
block the live activations per token are about ``(7 + mlp_ratio) * D`` values (input, norm, q, k, v, attention
output, MLP hidden, residual); with the default ``mlp_ratio`` 4 that is 11 D, rounded up to 12 D here as margin.
Memory-efficient attention kernels (flash / SDPA on GPU, the CPU flash kernel) add O(tokens * D) workspace; a
kernel that materialises the attention matrix adds ``heads * n^2`` fp32 values per group of ``n`` tokens, which
:func:`attention_scores_bytes` reports separately. Weights are not counted (ComfyUI places them).
"""

from __future__ import annotations

from .attention_layouts import LayoutSpec, attention_cost
from .config import DiTConfig

ACTIVATION_VALUES_PER_TOKEN = 12  # times hidden_size; see the module docstring


def tokens_per_job(config: DiTConfig, window: int, tile: int) -> int:
    """Tokens of one (window, tile) job: ``window * (tile / patch)^2``."""
    side = tile // config.patch_size
    return window * side * side


def activation_bytes(config: DiTConfig, window: int, tile: int, batch: int = 1, dtype_bytes: int = 2) -> int:
    """Estimated peak activation bytes of one model call on ``batch`` jobs of ``window x tile x tile`` latents."""
    return batch * tokens_per_job(config, window, tile) * ACTIVATION_VALUES_PER_TOKEN * config.hidden_size * dtype_bytes


def attention_scores_bytes(config: DiTConfig, layout: LayoutSpec, window: int, tile: int, batch: int = 1) -> int:
    """Bytes of the largest block's attention matrix (fp32) if the kernel materialises it (math kernel)."""
    side = tile // config.patch_size
    cost = attention_cost(layout, window, side, side, config.depth, config.hidden_size, config.mlp_ratio)
    biggest = max(cost.group_tokens)
    return batch * (cost.tokens // biggest) * biggest * biggest * config.num_heads * 4


def max_batch_for_budget(
    config: DiTConfig, window: int, tile: int, budget_bytes: int, jobs: int, dtype_bytes: int = 2
) -> int:
    """Largest number of (window, tile) jobs per model call whose activations fit ``budget_bytes``.

    Args:
        config: the DiT sizes.
        window, tile: latent frames per window and latent pixels per square tile.
        budget_bytes: memory allowed for one call's activations (> 0).
        jobs: jobs per step (videos x windows x tiles): more per call is never useful.
        dtype_bytes: bytes per activation value (2 for fp16/bf16, 4 for fp32).

    Returns:
        at least 1 (one job is the smallest call there is) and at most ``jobs``.
    """
    if budget_bytes <= 0:
        raise ValueError(f"budget_bytes: expected > 0, got {budget_bytes}")
    if jobs < 1:
        raise ValueError(f"jobs: expected >= 1, got {jobs}")
    per_job = activation_bytes(config, window, tile, 1, dtype_bytes)
    return max(1, min(jobs, budget_bytes // per_job))
