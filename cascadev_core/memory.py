"""Memory of one DiT call, from the model's config and dtypes, and the window/tile batch that fits a budget.

One refine model call processes ``batch`` (window, tile) jobs: ``T = batch * window * (tile / patch)^2`` tokens of
width ``D``, MLP width ``H = mlp_ratio * D``. :func:`call_bytes` is the peak of the tensors the call allocates
beyond its input and the weights, following :mod:`cascadev_core.dit` step by step, in bytes per token (``s``, ``m``,
``a``: bytes of the stream, matmul and attention dtypes; ``f`` = 4, LayerNorm and modulation run in float32):

* the block's input ``s*D`` (held by the caller) plus, in the attention half, the modulated input ``m*D``, the
  qkv output ``3m*D`` while it is copied to dense ``3a*D`` q/k/v (the largest moment of the attention half; on a
  GPU without a cast there is no copy, and the estimate is that much above); later
  the attention output ``a*D`` (and its cast to the proj dtype ``m*D``);
* the MLP half: input and new stream ``2s*D``, modulated input ``m*D``, fc1 output (GELU in place) ``m*H``, fc2
  output ``m*D``;
* the modulation: LayerNorm output in float32 (``f*D``; one more ``f*D`` for several videos per call, and for a
  stream narrower than float32 its float32 copy);
* the final layer (norm of all frames in float32) and, once per model, the cached position embedding of a window
  ``window * (tile/patch)^2 * s*D``.

The largest of these moments, times ``T``, plus the position-embedding cache. Tested against the measured peak
(:class:`~cascadev_core.live_bytes.LiveTensorBytes`) of real forwards within 25% (tests/core/test_memory_budget.py).
Not counted: kernel-internal workspaces (flash attention's are O(threads * block^2)); a kernel that materialises
the attention matrix adds ``heads * n^2`` float32 values per group of ``n`` tokens, reported separately by
:func:`attention_scores_bytes`. Weights are not counted (ComfyUI places them).
"""

from __future__ import annotations

import torch

from .attention_layouts import LayoutSpec, attention_cost
from .config import DiTConfig
from .precision import Precision, resolve_precision


def tokens_per_job(config: DiTConfig, window: int, tile: int) -> int:
    """Tokens of one (window, tile) job: ``window * (tile / patch)^2``."""
    side = tile // config.patch_size
    return window * side * side


def _size(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits // 8


def per_token_bytes(config: DiTConfig, precision: Precision, videos: int = 1) -> int:
    """Peak bytes per token of one call inside the blocks and the final layer (see the module docstring).

    Args:
        config: the DiT sizes (hidden size, MLP ratio, heads, patch, output channels).
        precision: the dtypes the model runs in.
        videos: videos (jobs) per call: more than one adds a float32 buffer to the modulation.

    Returns:
        bytes per token at the largest moment of the call.
    """
    d, hid = config.hidden_size, config.mlp_hidden
    s, m, a = _size(precision.stream_dtype), _size(precision.matmul_dtype), _size(precision.attention_dtype)
    f = max(4, s)  # LayerNorm and modulation dtype
    upcast = f if s != f else 0  # the stream's float32 copy for the LayerNorm
    several = f if videos > 1 else 0  # LayerNorm output and modulated output both alive
    cast = m if m != f else 0  # the modulated output rounded to the matmul dtype
    modulate = max(upcast + f + several, f + cast)  # inside _norm_modulate
    qkv = m + 3 * m + 3 * a  # modulated input, qkv output and its dense copy
    sdpa = m + 3 * a + a + 4 * config.num_heads / d  # q/k/v, output (+ float32 logsumexp per head)
    out = m + a + (m if a != m else 0)  # attention output (its transpose is a view), cast to the proj dtype
    proj = m + (m if a != m else a) + m
    attention = s + max(modulate, qkv, sdpa, out, proj)
    mlp = 2 * s + max(modulate, 2 * m + m * hid / d)
    final_norm = s + max(upcast + f, 2 * f, f + (s if s != f else 0))  # all frames: LayerNorm, then addcmul
    final_out = s + (2 * s + 4) * config.patch_size**2 * config.out_channels / d  # linear, unpatchify, cast
    final = max(final_norm, final_out)
    return int(d * max(attention, mlp, final) + 0.5)


def call_bytes(config: DiTConfig, window: int, tile: int, batch: int = 1, precision: Precision | str = "fp32") -> int:
    """Estimated peak bytes one model call allocates on ``batch`` jobs of ``window x tile x tile`` latents.

    Args:
        config: the DiT sizes.
        window, tile: latent frames per window and latent pixels per square tile.
        batch: jobs (videos) per call.
        precision: a :class:`~cascadev_core.precision.Precision`, or a mode name resolved for the CPU (pass a
            resolved one for a GPU: ``resolve_precision(mode, device)``).

    Returns:
        bytes: ``batch * tokens_per_job * per_token_bytes`` plus the position-embedding cache of one window.
    """
    if isinstance(precision, str):
        precision = resolve_precision(precision, "cpu")
    tokens = tokens_per_job(config, window, tile)
    pe_cache = tokens * config.hidden_size * _size(precision.stream_dtype)
    return batch * tokens * per_token_bytes(config, precision, batch) + pe_cache


def model_precision(model) -> Precision:
    """The dtypes a loaded :class:`~cascadev_core.dit.CascadeDiT` runs in, read from its parameters."""
    attention = model.attention_dtype or model.matmul_dtype
    device = model.x_embedder.proj.weight.device.type
    rounded = model.round_timestep if model.round_timestep is not None else model.dtype == torch.float16
    return Precision("model", device, model.dtype, model.matmul_dtype, attention, rounded)


def model_call_bytes(model, window: int, tile: int, batch: int = 1) -> int:
    """:func:`call_bytes` for a loaded ``CascadeDiT``: its config and the dtypes it holds now."""
    return call_bytes(model.config, window, tile, batch, model_precision(model))


def attention_scores_bytes(config: DiTConfig, layout: LayoutSpec, window: int, tile: int, batch: int = 1) -> int:
    """Bytes of the largest block's attention matrix (fp32) if the kernel materialises it (math kernel)."""
    side = tile // config.patch_size
    cost = attention_cost(layout, window, side, side, config.depth, config.hidden_size, config.mlp_ratio)
    biggest = max(cost.group_tokens)
    return batch * (cost.tokens // biggest) * biggest * biggest * config.num_heads * 4


def activation_bytes(config: DiTConfig, window: int, tile: int, batch: int = 1, dtype_bytes: int = 2) -> int:
    """Old entry point: :func:`call_bytes` for the GPU official recipe (``dtype_bytes`` 2) or fp32 (4).

    Prefer :func:`call_bytes` / :func:`model_call_bytes`, which know the precision mode.
    """
    mode = resolve_precision("official", "cuda") if dtype_bytes == 2 else resolve_precision("fp32", "cpu")
    return call_bytes(config, window, tile, batch, mode)


def max_batch_for_budget(
    config: DiTConfig, window: int, tile: int, budget_bytes: int, jobs: int, precision: Precision | str = "fp32"
) -> int:
    """Largest number of (window, tile) jobs per model call whose memory (:func:`call_bytes`) fits the budget.

    Args:
        config: the DiT sizes.
        window, tile: latent frames per window and latent pixels per square tile.
        budget_bytes: memory allowed for one call (> 0).
        jobs: jobs per step (videos x windows x tiles): more per call is never useful.
        precision: the dtypes the model runs in (see :func:`call_bytes`).

    Returns:
        at least 1 (one job is the smallest call there is) and at most ``jobs``.
    """
    if budget_bytes <= 0:
        raise ValueError(f"budget_bytes: expected > 0, got {budget_bytes}")
    if jobs < 1:
        raise ValueError(f"jobs: expected >= 1, got {jobs}")
    best = 1
    for batch in range(2, jobs + 1):  # per-token bytes step up once past one video: not a plain division
        if call_bytes(config, window, tile, batch, precision) > budget_bytes:
            break
        best = batch
    return best
