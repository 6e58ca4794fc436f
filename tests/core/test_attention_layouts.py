"""Grid / window attention layouts: partitioned SDPA equals full attention with the block-diagonal mask."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from cascadev_core.attention_layouts import (
    FULL,
    LAYOUT_PRESETS,
    GridPartition,
    WindowPartition,
    attention_cost,
    block_diagonal_mask,
    describe_layout,
    parse_entry,
    partition_tokens,
    resolve_layout,
    unpartition_tokens,
)
from cascadev_core.config import DiTConfig
from cascadev_core.dit import CascadeDiT, DiTBlock

# (name, entry, frames, rows, cols): one case per layout kind
KINDS = [
    ("official spatial [1,4]", [1, 4], 4, 8, 8),
    ("official temporal [4,1]", [4, 1], 8, 4, 4),
    ("official full", None, 4, 4, 4),
    ("custom grid [2,2]", [2, 2], 4, 4, 8),
    ("paper spatial [1,2]", [1, 2], 4, 4, 4),
    ("paper temporal [4,1]", [4, 1], 4, 4, 4),
    ("walt spatial 1x16x16", {"window": [1, 16, 16]}, 2, 16, 16),
    ("walt spatio-temporal 5x8x8", {"window": [5, 8, 8]}, 5, 8, 16),
    ("window whole-axis 1x*x*", "1x*x*", 3, 4, 4),
]


def _sdpa_grouped(q, k, v, entry, frames, rows, cols):
    """Reference path of the model: partition [B, S, heads*hd] tokens, SDPA per group, unpartition."""
    b, s, d = q.shape
    parts = [partition_tokens(t, entry, frames, rows, cols)[0] for t in (q, k, v)]
    heads = 2
    qh, kh, vh = (t.reshape(t.shape[0], t.shape[1], heads, d // heads).transpose(1, 2) for t in parts)
    out = F.scaled_dot_product_attention(qh, kh, vh).transpose(1, 2).reshape(parts[0].shape)
    return unpartition_tokens(out, entry, frames, rows, cols)


def _sdpa_masked(q, k, v, mask):
    b, s, d = q.shape
    heads = 2
    qh, kh, vh = (t.reshape(b, s, heads, d // heads).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, s, d)


@pytest.mark.parametrize(("name", "raw", "frames", "rows", "cols"), KINDS, ids=[k[0] for k in KINDS])
def test_partitioned_attention_equals_masked_full(name, raw, frames, rows, cols):
    entry = parse_entry(raw)
    gen = torch.Generator().manual_seed(0)
    s = frames * rows * cols
    q, k, v = (torch.randn(2, s, 16, generator=gen, dtype=torch.float64) for _ in range(3))
    mask = block_diagonal_mask(entry, frames, rows, cols)
    grouped = _sdpa_grouped(q, k, v, entry, frames, rows, cols)
    masked = _sdpa_masked(q, k, v, mask)
    torch.testing.assert_close(grouped, masked, atol=1e-12, rtol=1e-12)
    nt, nh, nw = entry.split(frames, rows, cols)
    groups = nt * nh * nw
    assert int(mask.sum()) == s * s // groups  # every token sees exactly its group
    full = _sdpa_masked(q, k, v, None)
    if groups > 1:  # the restriction really changes the result
        assert (grouped - full).abs().max() > 1e-2
    else:
        assert entry == FULL or raw is None
        torch.testing.assert_close(grouped, full, atol=1e-12, rtol=1e-12)


def test_grid_partition_order_matches_official_reshape():
    """Group order (chunk, row window, column window) and token order (frame, row, column) of PixArt.forward."""
    b, ts, xs, frames, rows, cols, d = 2, 2, 2, 4, 4, 6, 3
    x = torch.randn(b, frames * rows * cols, d)
    gt, gh, gw = frames // ts, rows // xs, cols // xs
    official = x.reshape(b, ts, gt, xs, gh, xs, gw, d).permute(0, 1, 3, 5, 2, 4, 6, 7)
    official = official.reshape(b * ts * xs * xs, gt * gh * gw, d)
    ours, groups = partition_tokens(x, GridPartition(ts, xs), frames, rows, cols)
    assert groups == ts * xs * xs
    assert torch.equal(ours, official)
    assert torch.equal(unpartition_tokens(ours, GridPartition(ts, xs), frames, rows, cols), x)


def _reference_block(block: DiTBlock, x, t, mask):
    """Independent float64 re-statement of one adaLN-single block with masked full attention."""
    b, s, d = x.shape
    heads = block.attn.num_heads
    mods = (block.scale_shift_table[None] + t.reshape(b, 6, d)).chunk(6, dim=1)

    def norm_mod(h, shift, scale):
        return F.layer_norm(h, (d,), eps=1e-6) * (1 + scale) + shift

    h = norm_mod(x, mods[0], mods[1])
    q, k, v = block.attn.qkv(h).split(d, dim=-1)
    qh, kh, vh = (z.reshape(b, s, heads, d // heads).transpose(1, 2) for z in (q, k, v))
    att = torch.softmax(qh @ kh.transpose(-1, -2) / (d // heads) ** 0.5 + torch.where(mask, 0.0, -torch.inf), -1)
    x = x + mods[2] * block.attn.proj((att @ vh).transpose(1, 2).reshape(b, s, d))
    h = norm_mod(x, mods[3], mods[4])
    return x + mods[5] * block.mlp.fc2(F.gelu(block.mlp.fc1(h), approximate="tanh"))


@pytest.mark.parametrize(("name", "raw", "frames", "rows", "cols"), KINDS, ids=[k[0] for k in KINDS])
def test_dit_block_with_layout_equals_masked_block(name, raw, frames, rows, cols):
    torch.manual_seed(1)
    d = 24
    block = DiTBlock(d, num_heads=4, mlp_hidden=48).double()
    for p in block.parameters():  # non-trivial gates / biases
        torch.nn.init.normal_(p, std=0.3)
    entry = parse_entry(raw)
    s = frames * rows * cols
    x = torch.randn(2, s, d, dtype=torch.float64)
    t = torch.randn(2, 6 * d, dtype=torch.float64)
    with torch.no_grad():
        parts, groups = partition_tokens(x, entry, frames, rows, cols)
        out = block(parts.reshape(2, s, d), t, groups, torch.float64)
        out = unpartition_tokens(out.reshape(parts.shape), entry, frames, rows, cols)
        ref = _reference_block(block, x, t, block_diagonal_mask(entry, frames, rows, cols))
        unrestricted = _reference_block(block, x, t, torch.ones(s, s, dtype=torch.bool))
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    if groups > 1:
        assert (out - unrestricted).abs().max() > 1e-3


def test_presets_resolve():
    official = resolve_layout("official", 28)
    s, t = GridPartition(1, 4), GridPartition(4, 1)
    assert official == tuple([s, t] * 4 + [FULL] * 4 + [s, t] * 4 + [FULL] * 8)
    assert resolve_layout("full", 28) == (FULL,) * 28 == resolve_layout(None, 28)
    assert resolve_layout([[1, 1]], 3) == (FULL,) * 3
    paper = resolve_layout("paper", 6)
    assert paper == (GridPartition(1, 2), GridPartition(4, 1)) * 3
    # the paper's rule: temporal chunks = (spatial windows per axis)^2, so every block has P^2 groups
    for entry in paper:
        nt, nh, nw = entry.split(8, 64, 64)
        assert nt * nh * nw == 4
    assert resolve_layout("paper:4", 2) == (GridPartition(1, 4), GridPartition(16, 1))
    walt = resolve_layout("walt", 4)
    assert walt == (WindowPartition(1, 16, 16), WindowPartition(5, 8, 8)) * 2
    # custom lists cycle like attn_strides[i % len]
    custom = resolve_layout([[2, 2], [8, 1], [1, 2]], 7)
    assert [e.to_json() for e in custom] == [[2, 2], [8, 1], [1, 2], [2, 2], [8, 1], [1, 2], [2, 2]]
    # the presets really are different layouts
    resolved = {name: resolve_layout(name, 28) for name in LAYOUT_PRESETS}
    assert len({v for v in resolved.values()}) == len(LAYOUT_PRESETS)
    assert describe_layout("official", 3) == ["grid[1,4]", "grid[4,1]", "grid[1,4]"]


def test_official_preset_equals_released_manifest(reference_dir):
    manifest = reference_dir / "manifest_s1024.json"
    strides = json.loads(manifest.read_text())["model"]["attn_strides"]
    assert resolve_layout(strides, 28) == resolve_layout("official", 28)
    assert list(LAYOUT_PRESETS["official"]) == strides


def test_reference_json_per_block_strides(reference_dir):
    path = reference_dir / "dit_tiny.json"
    ctor = json.loads(path.read_text())["constructor"]
    for name, per_block in ctor["per_block_strides (attn_strides[i % len])"].items():
        got = [e.to_json() for e in resolve_layout(ctor["attn_strides"][name], ctor["depth"])]
        assert got == [None if v == "full" else v for v in per_block], name


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ([[1, 4], [0, 1]], "layout entry #1"),
        ([[1, 4], "banana"], "layout entry #1"),
        ([], "empty"),
        ("nonexistent", "unknown attention layout"),
        ([{"window": [1, 2]}], "three sizes"),
        ([[1, 2, 3, 4]], "layout entry #0"),
        ("paper:1", "P >= 2"),
    ],
)
def test_malformed_layouts_raise(layout, message):
    with pytest.raises(ValueError, match=message):
        resolve_layout(layout, 4)


def test_indivisible_sizes_name_block_entry_and_sizes():
    cfg = DiTConfig(hidden_size=24, depth=3, num_heads=2, input_size=16, attn_layout=[[1, 2], [3, 1], None])
    model = CascadeDiT(cfg)
    x = torch.randn(8, 20, 8, 8)
    with pytest.raises(ValueError) as err:
        model(x, torch.full((8,), 500.0))
    text = str(err.value)
    assert "block 1" in text and "grid[3,1]" in text and "8 frames" in text and "ts=3" in text
    model.set_layout([[1, 3]])  # 4x4 tokens into 3 windows
    with pytest.raises(ValueError, match=r"block 0.*grid\[1,3\].*4 token rows into xs=3"):
        model(x, torch.full((8,), 500.0))
    model.set_layout("walt")  # 5-frame windows cannot split 8 latent frames; 16-token windows not 4x4 tokens
    with pytest.raises(ValueError, match=r"block 0, entry window 1x16x16.*h: 4 tokens into windows of 16"):
        model(x, torch.full((8,), 500.0))
    with pytest.raises(ValueError, match=r"block 1.*window 5x8x8.*t: 8 tokens into windows of 5"):
        partition_tokens(torch.zeros(1, 8 * 16 * 16, 4), WindowPartition(5, 8, 8), 8, 16, 16, block=1)
    with pytest.raises(ValueError, match="batch of 8 frames"):
        model(x, torch.full((8,), 500.0), frames_per_video=3)


def test_attention_cost():
    official = attention_cost("official", 8, 64, 64)
    assert official.ratio == pytest.approx(14.5 / 28)  # 8 x 1/16 + 8 x 1/4 + 12 x 1 over 28 blocks
    assert round(official.ratio, 2) == 0.52
    assert official.group_tokens[:3] == (2048, 8192, 2048) and official.tokens == 32768
    assert attention_cost("full", 8, 64, 64).ratio == 1.0
    assert attention_cost("paper", 8, 64, 64).ratio == pytest.approx(0.25)
    walt = attention_cost("walt", 10, 64, 64)
    assert walt.ratio == pytest.approx((256 + 5 * 64) / 2 / 40960)
    # linear layers are paid in full: the whole-stack ratio lies between the attention ratio and 1
    assert official.ratio < official.block_ratio < 1.0
    assert attention_cost("official", 8, 16, 16).block_ratio > official.block_ratio  # fewer tokens: less gain
    with pytest.raises(ValueError, match="block 1"):
        attention_cost("walt", 8, 64, 64)
