"""The CascadeV DiT: a PixArt-style adaLN-single transformer over the tokens of whole latent videos.

Parameter names equal the official ``PixArt`` (CascadeV ``patch/PixArt.py``) so released state dicts load with
``strict=True``; the position embedding is computed on the fly and is not part of the state dict.

Precision: three dtypes, set by :mod:`cascadev_core.precision` (or by hand):

* the token stream ("activation") dtype = the dtype of every parameter outside the block linears (patch and
  timestep embedders, ``t_block``, ``scale_shift_table``, final layer): the residual stream, the modulation and the
  gated residual sums run in it;
* the matmul dtype = the dtype of each block's ``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``: the
  modulated LayerNorm output is rounded to it once, the MLP runs in it;
* ``attention_dtype``: q/k/v are cast to it before attention (default float32).

``model.to(torch.float16)`` (all in fp16) with float32 attention is the official fp16 inference (``model.half()``
under fp16 autocast with ``fp32_attention=True``); no autocast context is needed. Layer norms and the adaLN
modulation always run in (at least) float32. In float32 every cast is a no-op.

Elementwise work is fused: the modulation is the LayerNorm's own affine for one video per call (one kernel) or
one ``addcmul`` otherwise, and each gated residual is one ``addcmul`` (the second in place on the block's own
tensor), so a block allocates two fewer stream-sized tensors than ``x + gate * f(x)`` written out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention_layouts import LayoutSpec, Partition, group_counts, partition_tokens, resolve_layout, unpartition_tokens
from .config import DiTConfig
from .pos_embed import timestep_embedding, video_pos_embed

_LN_EPS = 1e-6


def _ATEN():  # noqa: N802 - torch.ops.aten, reached so that Ray's pickling of this module by value works
    """``torch.ops.aten`` (the in-place GELU has no public API); ``torch.ops`` itself cannot be pickled, so the
    attribute is looked up by name when called."""
    return getattr(torch, "ops").aten  # noqa: B009


def _norm_modulate(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, out_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``LayerNorm(x) * (1 + scale) + shift`` in (at least) float32 (LN eps 1e-6, no affine), rounded once.

    With one video (B = 1) the modulation is passed as the LayerNorm's affine weight and bias (one kernel);
    otherwise LayerNorm, then one ``addcmul``.

    Args:
        x: ``[B, S, D]``; shift, scale: ``[B, 1, D]``.
        out_dtype: dtype of the result (None = x's dtype), e.g. the dtype of the linear it feeds.

    Returns:
        ``[B, S, D]`` in ``out_dtype``.
    """
    dt = torch.promote_types(x.dtype, torch.float32)  # float64 models stay float64
    d = x.shape[-1]
    scale1, shift = 1 + scale.to(dt), shift.to(dt)  # [B, 1, D], small
    if x.shape[0] == 1:
        h = F.layer_norm(x.to(dt), (d,), scale1.reshape(d), shift.reshape(d), eps=_LN_EPS)
    else:
        h = torch.addcmul(shift, F.layer_norm(x.to(dt), (d,), eps=_LN_EPS), scale1)
    return h.to(x.dtype if out_dtype is None else out_dtype)


class PatchEmbed(nn.Module):
    """``Conv2d(in, D, p, stride p)``; ``[N, C, H, W] -> [N, Hp*Wp, D]`` (row-major tokens)."""

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W] -> [N, (H/p)*(W/p), D]``."""
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    """256 sinusoidal features -> ``Linear(256, D)``, SiLU, ``Linear(D, D)`` (keys ``mlp.0``, ``mlp.2``)."""

    def __init__(self, hidden_size: int, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        """``[N]`` timesteps -> ``[N, D]`` in the parameter dtype."""
        feats = timestep_embedding(timesteps, self.frequency_size)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


class SelfAttention(nn.Module):
    """Multi-head self attention over groups of tokens (``qkv``, ``proj``), through SDPA without masks."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, groups: int = 1, attention_dtype: torch.dtype | None = None) -> torch.Tensor:
        """Attention restricted to ``groups`` contiguous equal groups of each sequence.

        Args:
            x: ``[B, S, D]`` in the dtype of ``qkv``, tokens already in group order (group g = tokens
                ``g*S/G .. (g+1)*S/G - 1``).
            groups: G, groups per sequence (1 = full attention).
            attention_dtype: dtype of q/k/v and the attention kernel (None = x's dtype).

        Returns:
            ``[B, S, D]`` in the dtype of ``proj``.
        """
        b, s, d = x.shape
        heads = self.num_heads
        # qkv channels are [q | k | v], each split into heads contiguously
        qkv = self.qkv(x).reshape(b * groups, s // groups, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        # one dense copy [3, B*G, heads, n, head_dim] with the cast; without a cast only on the CPU, whose flash
        # kernel runs ~15% faster on dense q/k/v (GPU kernels take the strided views as they are)
        dtype = attention_dtype or qkv.dtype
        if dtype != qkv.dtype:
            qkv = qkv.to(dtype, memory_format=torch.contiguous_format)
        elif qkv.device.type == "cpu":
            qkv = qkv.contiguous()
        out = F.scaled_dot_product_attention(*qkv.unbind(0))  # [B*G, heads, n, head_dim]
        del qkv  # freed before the output copies below
        out = out.transpose(1, 2).reshape(b, s, d).to(self.proj.weight.dtype)
        return self.proj(out)


class Mlp(nn.Module):
    """``fc1``, GELU (tanh approximation), ``fc2``."""

    def __init__(self, hidden_size: int, mlp_hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, mlp_hidden)
        self.fc2 = nn.Linear(mlp_hidden, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D] -> [..., D]`` (GELU in place on the fc1 output when no gradient is recorded)."""
        h = self.fc1(x)
        h = F.gelu(h, approximate="tanh") if h.requires_grad else _ATEN().gelu_(h, approximate="tanh")
        return self.fc2(h)


class DiTBlock(nn.Module):
    """adaLN-single transformer block (``scale_shift_table``, ``attn``, ``mlp``)."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden_size) / hidden_size**0.5)
        self.attn = SelfAttention(hidden_size, num_heads)
        self.mlp = Mlp(hidden_size, mlp_hidden)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, groups: int = 1, attention_dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """One block.

        Args:
            x: ``[B, S, D]`` tokens of B videos, in the group order of the block's partition (stream dtype;
                not modified).
            t: ``[B, 6*D]`` the video's ``t_block`` output (shared by all its groups).
            groups: attention groups per video (see :meth:`SelfAttention.forward`).
            attention_dtype: dtype of q/k/v and attention.

        Returns:
            ``[B, S, D]`` in x's dtype.
        """
        b, _, d = x.shape
        mods = (self.scale_shift_table[None] + t.reshape(b, 6, d)).chunk(6, dim=1)  # each [B, 1, D]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        mm_dtype = self.attn.qkv.weight.dtype
        h = self.attn(_norm_modulate(x, shift_msa, scale_msa, mm_dtype), groups, attention_dtype)
        x = torch.addcmul(x, gate_msa, h)  # x + gate * h, a new tensor: the caller's x stays as it was
        del h  # freed before the MLP runs
        h = self.mlp(_norm_modulate(x, shift_mlp, scale_mlp, mm_dtype))
        return x.addcmul_(gate_mlp, h)  # in place on the tensor made above


class FinalLayer(nn.Module):
    """Per-frame output head (``scale_shift_table`` [2, D], ``linear`` D -> p*p*C_out)."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size**0.5)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x [N, n, D]``, ``emb [N, D]`` (per-frame timestep embedding) -> ``[N, n, p*p*C_out]``."""
        shift, scale = (self.scale_shift_table[None] + emb[:, None]).chunk(2, dim=1)
        return self.linear(_norm_modulate(x, shift, scale, self.linear.weight.dtype))


class CascadeDiT(nn.Module):
    """CascadeV DiT (official ``PixArt`` of CascadeV, without cross-attention) with selectable grid layouts.

    Args:
        config: model sizes and default attention layout (``config.attn_layout``).
        attention_dtype: dtype of q/k/v and the attention kernel; default float32 = the official
            ``fp32_attention=True`` recipe. None runs attention in the matmul dtype (of the block linears).
        round_timestep: cast timesteps to the stream dtype before embedding them, as the official forward
            does (``timestep.to(self.dtype)``: with fp16 weights 713.57 becomes 713.5). None (default) =
            only when the stream is float16 (the official recipe); bfloat16 keeps float32 timesteps
            because bf16 rounding moves t by up to 2 and no official bf16 recipe exists.

    :func:`cascadev_core.precision.apply_precision` sets all three dtypes from a mode name.
    """

    def __init__(
        self,
        config: DiTConfig,
        *,
        attention_dtype: torch.dtype | None = torch.float32,
        round_timestep: bool | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.attention_dtype = attention_dtype
        self.round_timestep = round_timestep
        d = config.hidden_size
        self.x_embedder = PatchEmbed(config.patch_size, config.in_channels, d)
        self.t_embedder = TimestepEmbedder(d)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(DiTBlock(d, config.num_heads, config.mlp_hidden) for _ in range(config.depth))
        self.final_layer = FinalLayer(d, config.patch_size, config.out_channels)
        self.layout: tuple[Partition, ...] = resolve_layout(config.attn_layout, config.depth)
        self._pe_cache: tuple[tuple, torch.Tensor] | None = None

    def set_layout(self, layout: LayoutSpec) -> None:
        """Use another attention layout (preset name, None or list; the weights are unchanged)."""
        self.layout = resolve_layout(layout, self.config.depth)

    @property
    def dtype(self) -> torch.dtype:
        """Token-stream (activation) dtype: the dtype of the parameters outside the block linears."""
        return self.x_embedder.proj.weight.dtype

    @property
    def matmul_dtype(self) -> torch.dtype:
        """Dtype of the block linears (qkv, proj, fc1, fc2): the dtype the bulk of the FLOPs run in."""
        return self.blocks[0].attn.qkv.weight.dtype

    def pos_embed(self, frames: int, rows: int, cols: int, device: torch.device) -> torch.Tensor:
        """Position embedding ``[1, L*Hp*Wp, D]`` in the compute dtype (cached for the last grid)."""
        key = (frames, rows, cols, self.dtype, device, self.config.hidden_size, self.config.pe_interpolation)
        if self._pe_cache is None or self._pe_cache[0] != key:
            pe = video_pos_embed(
                self.config.hidden_size, frames, rows, cols, self.config.pe_interpolation, self.dtype, device
            )
            self._pe_cache = (key, pe)
        return self._pe_cache[1]

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, frames_per_video: int | None = None) -> torch.Tensor:
        """Predict epsilon and variance values for a batch of latent videos.

        Args:
            x: ``[N, in_channels, H, W]``, N = videos * frames_per_video, row ``v*L + f`` = frame f of video v;
                channels ``0:4`` noisy latent (already scaled by 1/sqrt(sigma^2+1)), ``4:20`` upsampled
                effnet conditioning * 0.13025. H, W divisible by patch_size.
            timestep: ``[N]`` (or a scalar / number) raw DDPM timesteps 0..999; the blocks read the first frame of each
                video, the final layer every frame's own value.
            frames_per_video: L (default ``config.lats_per_vid``); must be divisible as the layout needs.

        Returns:
            ``[N, out_channels, H, W]`` in x's dtype, on the model's device: channels ``0:4`` epsilon, ``4:8`` learned-variance values.
        """
        cfg = self.config
        n, c, h, w = x.shape
        frames = cfg.lats_per_vid if frames_per_video is None else int(frames_per_video)
        p = cfg.patch_size
        if c != cfg.in_channels:
            raise ValueError(f"x has {c} channels, the model expects in_channels={cfg.in_channels}")
        if frames < 1 or n % frames:
            raise ValueError(f"batch of {n} frames is not a whole number of videos of {frames} frames")
        if h % p or w % p:
            raise ValueError(f"latent size {h}x{w} is not divisible by patch_size={p}")
        weight = self.x_embedder.proj.weight
        timestep = torch.as_tensor(timestep, device=weight.device).reshape(-1)
        if timestep.numel() == 1:
            timestep = timestep.expand(n)
        if timestep.numel() != n:
            raise ValueError(f"timestep has {timestep.numel()} values for {n} frames")
        videos, rows, cols = n // frames, h // p, w // p
        groups = [group_counts(e, frames, rows, cols, i) for i, e in enumerate(self.layout)]  # validate first

        dtype = weight.dtype
        out_dtype = x.dtype
        round_t = self.round_timestep if self.round_timestep is not None else dtype == torch.float16
        if round_t:
            timestep = timestep.to(dtype)
        emb = self.t_embedder(timestep)  # [N, D] per frame, for the final layer
        t_vid = self.t_block(self.t_embedder(timestep.reshape(videos, frames)[:, 0]))  # [B, 6D]

        d = cfg.hidden_size
        seq = self.x_embedder(x.to(device=weight.device, dtype=dtype)).reshape(videos, frames * rows * cols, d)
        seq = seq + self.pos_embed(frames, rows, cols, weight.device)  # [B, L*Hp*Wp, D]

        for i, (block, entry) in enumerate(zip(self.blocks, self.layout)):
            g = groups[i][0] * groups[i][1] * groups[i][2]
            if g == 1:
                seq = block(seq, t_vid, 1, self.attention_dtype)
                continue
            parts = partition_tokens(seq, entry, frames, rows, cols, i)[0].reshape(videos, -1, d)  # G groups each
            del seq  # only the partitioned copy lives through the block
            parts = block(parts, t_vid, g, self.attention_dtype)
            seq = unpartition_tokens(parts.reshape(videos * g, -1, d), entry, frames, rows, cols, i)
            del parts

        out = self.final_layer(seq.reshape(n, rows * cols, d), emb)  # [N, Hp*Wp, p*p*C]
        out = out.reshape(n, rows, cols, p, p, cfg.out_channels)
        out = out.permute(0, 5, 1, 3, 2, 4).reshape(n, cfg.out_channels, rows * p, cols * p)
        return out.to(out_dtype)
