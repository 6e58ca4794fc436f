"""Sin-cos position embedding of video tokens and the sinusoidal timestep embedding of the CascadeV DiT.

Numerics follow the official implementation: positions are float32 values (``index / pe_interpolation``
rounded to float32), the embedding is evaluated in float64 and cast to the model dtype at the end.
"""

from __future__ import annotations

import math

import torch


def sincos_1d(width: int, positions: torch.Tensor) -> torch.Tensor:
    """1-D sin-cos embedding ``[sin(p * omega_k), cos(p * omega_k)]``, ``omega_k = 10000^(-k / (width/2))``.

    Args:
        width: embedding width (even).
        positions: ``[M]`` positions (any float dtype; evaluated in float64).

    Returns:
        ``[M, width]`` float64.
    """
    if width % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {width}")
    half = width // 2
    omega = torch.arange(half, dtype=torch.float64, device=positions.device) / (width / 2.0)
    omega = 1.0 / torch.pow(10000.0, omega)
    angles = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def spatial_pos_embed(
    width: int, rows: int, cols: int, pe_interpolation: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """2-D sin-cos embedding of a ``rows x cols`` token grid (row-major tokens).

    The first ``width/2`` channels encode the column ``j / pe_interpolation``, the second half the row
    ``i / pe_interpolation`` (positions rounded to float32 first, as the official numpy code does).

    Returns:
        ``[rows*cols, width]`` float64.
    """
    if width % 4:
        raise ValueError(f"spatial embedding width must be divisible by 4, got {width}")
    col = torch.arange(cols, dtype=torch.float32, device=device) / pe_interpolation
    row = torch.arange(rows, dtype=torch.float32, device=device) / pe_interpolation
    col_emb = sincos_1d(width // 2, col)  # [cols, w/2]
    row_emb = sincos_1d(width // 2, row)  # [rows, w/2]
    grid = torch.cat([col_emb[None, :, :].expand(rows, cols, -1), row_emb[:, None, :].expand(rows, cols, -1)], dim=-1)
    return grid.reshape(rows * cols, width)


def video_pos_embed(
    hidden_size: int,
    frames: int,
    rows: int,
    cols: int,
    pe_interpolation: float,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Position embedding the DiT adds after patch embedding: ``cat([temporal, spatial], -1)``.

    Temporal: :func:`sincos_1d` of the frame index (width D/3); spatial: :func:`spatial_pos_embed` (width
    2D/3). Positions start at 0 for every call (each sampler window / tile is its own video).

    Args:
        hidden_size: D (divisible by 6).
        frames, rows, cols: L, Hp, Wp.
        pe_interpolation: spatial position divisor (2.0 for the released model).
        dtype, device: of the result (computed in float64, then cast).

    Returns:
        ``[1, L*Hp*Wp, D]``, token index ``f*Hp*Wp + i*Wp + j``.
    """
    if hidden_size % 6:
        raise ValueError(f"hidden_size must be divisible by 6 for the position embedding, got {hidden_size}")
    t_width = hidden_size // 3
    # The cast is element-wise, so casting the two parts before broadcasting equals the official
    # cast of the concatenated float64 tensor, without a [L*Hp*Wp, D] float64 intermediate.
    temporal = sincos_1d(t_width, torch.arange(frames, dtype=torch.float32, device=device)).to(dtype)
    spatial = spatial_pos_embed(hidden_size - t_width, rows, cols, pe_interpolation, device).to(dtype)
    n = rows * cols
    emb = torch.cat([temporal[:, None, :].expand(frames, n, -1), spatial[None, :, :].expand(frames, n, -1)], dim=-1)
    return emb.reshape(1, frames * n, hidden_size)


def timestep_embedding(timesteps: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep features ``[cos(t * f_k), sin(t * f_k)]``, ``f_k = exp(-ln(max_period) k / (dim/2))``.

    Args:
        timesteps: ``[N]`` raw DDPM timesteps (0..999, fractional allowed).
        dim: feature width (256 in CascadeV).
        max_period: lowest frequency period.

    Returns:
        ``[N, dim]`` float32 (cos first; an odd ``dim`` gets a trailing zero column).
    """
    half = dim // 2
    k = torch.arange(0, half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(-math.log(max_period) * k / half)
    angles = timesteps.reshape(-1, 1).float() * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb
