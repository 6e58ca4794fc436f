"""Checkpoint loading: released .pth format, strict key/shape checks, converter round trip, fp16 recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cascadev_core.checkpoint import (
    METADATA_CONFIG_KEY,
    CheckpointMismatchError,
    build_model,
    infer_config,
    load_dit,
    load_state_dict_file,
)
from cascadev_core.config import DiTConfig
from cascadev_core.convert_checkpoint import main as convert_main
from cascadev_core.dit import CascadeDiT

REPO = Path(__file__).resolve().parents[2]
TINY = DiTConfig(hidden_size=24, depth=2, num_heads=2, input_size=8, attn_layout=[[1, 2], None])


def _random_state(cfg: DiTConfig, dtype=torch.float16, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    model = CascadeDiT(cfg)
    return {k: (torch.randn(v.shape, generator=gen) * 0.2).to(dtype) for k, v in model.state_dict().items()}


def _save_released(path: Path, state: dict[str, torch.Tensor], **kwargs) -> Path:
    """The released layout: {"state_dict": fp16 tensors} with a pos_embed entry the official loader drops."""
    wrapped = dict(state)
    wrapped["pos_embed"] = torch.zeros(1, 8 * 16, state["x_embedder.proj.weight"].shape[0], dtype=torch.float16)
    torch.save({"state_dict": wrapped}, path, **kwargs)
    return path


def test_s1024_parameter_count_on_meta():
    model = build_model(DiTConfig.s1024())
    state = model.state_dict()
    assert all(t.is_meta for t in state.values())  # nothing allocated
    assert len(state) == 263
    assert sum(t.numel() for t in state.values()) == 456_117_152
    assert not any("pos_embed" in k for k in state)


def test_s1024_keys_and_shapes_equal_manifest(reference_dir):
    path = reference_dir / "manifest_s1024.json"
    manifest = json.loads(path.read_text())
    state = build_model(DiTConfig.s1024()).state_dict()
    ours = [(k, list(v.shape)) for k, v in state.items()]
    theirs = [(k, v["shape"]) for k, v in manifest["state_dict"].items()]
    assert ours == theirs  # same keys, shapes and registration order
    assert sum(t.numel() for t in state.values()) == manifest["num_parameters"]


def test_released_format_loads_strictly(tmp_path):
    state = _random_state(TINY)
    path = _save_released(tmp_path / "tiny.pth", state)
    model, cfg = load_dit(path, num_heads=2)
    assert (cfg.hidden_size, cfg.depth, cfg.num_heads, cfg.in_channels, cfg.out_channels) == (24, 2, 2, 20, 8)
    loaded = model.state_dict()
    assert set(loaded) == set(state) and "pos_embed" not in loaded
    assert all(torch.equal(loaded[k], state[k]) and loaded[k].dtype == torch.float16 for k in state)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    # cast on load; the forward of the loaded model runs
    model32, _ = load_dit(path, config=TINY, dtype=torch.float32)
    assert all(torch.equal(v, state[k].float()) for k, v in model32.state_dict().items())
    with torch.no_grad():
        out = model32(torch.randn(8, 20, 8, 8), torch.full((8,), 500.0))
    assert out.shape == (8, 8, 8, 8) and torch.isfinite(out).all()
    # legacy (non-zip) torch serialisation cannot be memory-mapped: still loads
    legacy = _save_released(tmp_path / "legacy.pth", state, _use_new_zipfile_serialization=False)
    model_legacy, _ = load_dit(legacy, num_heads=2)
    assert all(torch.equal(v, state[k]) for k, v in model_legacy.state_dict().items())
    # an unwrapped plain state dict is accepted too
    torch.save(state, tmp_path / "plain.pth")
    assert load_state_dict_file(tmp_path / "plain.pth")[0].keys() == state.keys()


def test_num_heads_inference():
    released = infer_config(build_model(DiTConfig.s1024()).state_dict())
    assert released == DiTConfig.s1024()  # heads default to 16 for the 1152-wide model
    with pytest.raises(ValueError, match="cannot infer num_heads for hidden_size=24"):
        infer_config(_random_state(TINY))
    meta = {METADATA_CONFIG_KEY: TINY.to_json()}
    assert infer_config(_random_state(TINY), meta) == TINY


def test_mismatch_error_names_keys_and_path(tmp_path):
    state = _random_state(TINY)
    bad = dict(state)
    bad["x_embedder.proj.weight"] = torch.zeros(24, 16, 2, 2, dtype=torch.float16)
    del bad["blocks.1.mlp.fc2.bias"]
    bad["blocks.0.attn.q_norm.weight"] = torch.zeros(24, dtype=torch.float16)
    path = _save_released(tmp_path / "bad.pth", bad)
    with pytest.raises(CheckpointMismatchError) as err:
        load_dit(path, config=TINY)
    text = str(err.value)
    assert str(path) in text
    assert "1 missing key(s): blocks.1.mlp.fc2.bias" in text
    assert "1 unexpected key(s): blocks.0.attn.q_norm.weight" in text
    assert "1 wrong-shape key(s): x_embedder.proj.weight (file [24, 16, 2, 2], model [24, 20, 2, 2])" in text
    assert err.value.missing == ["blocks.1.mlp.fc2.bias"]
    # many problems: counts and only the first few names
    with pytest.raises(
        CheckpointMismatchError,
        match=r"55 missing key\(s\): blocks.1.mlp.fc2.bias, blocks.2.scale_shift_table, .*\.\.\. \(50 more\)",
    ):
        load_dit(path, config=DiTConfig(hidden_size=24, depth=8, num_heads=2, input_size=8))
    with pytest.raises(CheckpointMismatchError, match=r"wrong-shape"):
        load_dit(_save_released(tmp_path / "ok.pth", state), config=DiTConfig(hidden_size=48, depth=2, num_heads=2))


def test_converter_round_trip(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    state = _random_state(TINY)
    src = _save_released(tmp_path / "tiny.pth", state)
    dst = tmp_path / "tiny.safetensors"
    assert (
        convert_main([str(src), str(dst), "--num-heads", "2", "--layout", "[[1, 2], null]", "--input-size", "8"]) == 0
    )
    stored = load_file(str(dst))
    assert stored.keys() == state.keys()  # wrapper stripped, pos_embed dropped
    assert all(torch.equal(stored[k], state[k]) and stored[k].dtype == torch.float16 for k in state)
    with safe_open(str(dst), framework="pt") as handle:
        assert DiTConfig.from_dict(json.loads(handle.metadata()[METADATA_CONFIG_KEY])) == TINY
    # the converted file needs no sizes; both files give the same model
    from_st, cfg = load_dit(dst)
    from_pth, _ = load_dit(src, config=TINY)
    assert cfg == TINY
    x, t = torch.randn(8, 20, 8, 8), torch.full((8,), 321.0)
    with torch.no_grad():
        assert torch.equal(from_st.float()(x, t), from_pth.float()(x, t))
    assert convert_main([str(tmp_path / "missing.pth"), str(dst)]) == 2
    # the documented command line
    dst2 = tmp_path / "cli.safetensors"
    run = subprocess.run(
        [sys.executable, "-m", "cascadev_core.convert_checkpoint", str(src), str(dst2), "--num-heads", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["parameters"] == sum(v.numel() for v in state.values())
    assert load_file(str(dst2)).keys() == state.keys()


def test_fp16_recipe_close_to_fp32(tmp_path, monkeypatch, reference_dir):
    """Official fp16 inference: fp16 weights/activations, q/k/v and attention in fp32, timestep cast to fp16.

    Observed on the tiny reference model (case v2, |y| <= 4.4, std 1): max abs diff 0.041 against the float32
    output, of which most is the timestep rounding (856.29 -> 856.5, 142.71 -> 142.75): 0.0054 against a
    float32 run at the fp16-rounded timesteps (that rest is fp16 arithmetic). Case v1: 0.0195 / 0.0060.
    """
    from safetensors.torch import load_file

    fx = load_file(str(reference_dir / "dit_forward.safetensors"))
    cfg = DiTConfig.from_reference_json(reference_dir / "dit_tiny.json", "grid_official_scaled")
    weights = load_file(str(reference_dir / "dit_tiny.safetensors"))
    path = _save_released(tmp_path / "tiny_ref.pth", {k: v.half() for k, v in weights.items()})
    model16, _ = load_dit(path, config=cfg)  # keeps the file's fp16 = the released recipe
    assert model16.dtype == torch.float16

    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return sdpa(q, k, v, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        out16 = model16(fx["v2.x"], fx["v2.timestep"])
    assert len(seen) == cfg.depth and set(seen) == {(torch.float32,) * 3}
    assert out16.dtype == torch.float32  # returned in the input's dtype, like forward_with_dpmsolver

    ref = fx["v2.out.grid_official_scaled"]
    err = (out16 - ref).abs().max().item()
    model32 = CascadeDiT(cfg).eval()
    model32.load_state_dict(weights)
    with torch.no_grad():
        ref_rounded_t = model32(fx["v2.x"], fx["v2.timestep"].half().float())
    err_rounded = (out16 - ref_rounded_t).abs().max().item()
    print(f"fp16 recipe: max abs diff {err:.4g} vs fp32, {err_rounded:.4g} vs fp32 at fp16-rounded t")
    assert 1e-4 < err < 0.1
    assert err_rounded < 0.015 and err_rounded < err  # the timestep rounding is part of the recipe

    seen.clear()
    model16.attention_dtype = None  # attention in fp16 instead (faster on GPUs, not the official recipe)
    with torch.no_grad():
        model16(fx["v2.x"][:8], fx["v2.timestep"][:8])
    assert set(seen) == {(torch.float16,) * 3}


def test_outputs_do_not_depend_on_the_files_header_length(tmp_path):
    """Memory-mapped safetensors weights sit at the file's data offset (the header length decides ``data_ptr() %
    64``), and CPU matmul kernels round differently for unaligned operands. The same weights saved with metadata
    strings of 8 lengths (every 8-byte offset class mod 64) must load 64-byte aligned and give bitwise equal
    outputs. Before the loader re-aligned them, the offsets differed and the outputs moved by up to 3e-4."""
    from safetensors.torch import save_file

    cfg = DiTConfig(hidden_size=72, depth=2, num_heads=4, input_size=16, attn_layout=[[1, 4], None])
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen) * 0.2 for k, v in build_model(cfg).state_dict().items()}
    x, t = torch.randn(8, 20, 16, 16, generator=gen), torch.full((8,), 500.0)
    outputs, offsets = [], set()
    for pad in range(0, 64, 8):
        path = tmp_path / f"pad{pad}.safetensors"
        save_file(state, str(path), metadata={METADATA_CONFIG_KEY: cfg.to_json(), "note": "x" * pad})
        model, _ = load_dit(path)  # float32 file, float32 model: no cast that would copy the weights anyway
        tensors = list(model.state_dict().values())
        assert all(v.data_ptr() % 64 == 0 for v in tensors), pad
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
        offsets.add(int.from_bytes(path.read_bytes()[:8], "little") % 64)  # the file's data offset (mod 64) - 8
        with torch.no_grad():
            outputs.append(model(x, t))
    assert len(offsets) == 8  # the files really put the data at 8 different offsets
    assert all(torch.equal(out, outputs[0]) for out in outputs[1:])


def test_align_tensors_copies_only_unaligned_ones():
    from cascadev_core.checkpoint import align_tensors_, is_aligned

    model = torch.nn.Linear(16, 4)
    storage = torch.zeros(16 * 4 + 3)
    model.weight = torch.nn.Parameter(storage[3:].view(4, 16))  # 12 bytes into an aligned allocation
    bias = model.bias
    assert not is_aligned(model.weight)
    assert align_tensors_(model) == 1
    assert is_aligned(model.weight) and isinstance(model.weight, torch.nn.Parameter) and model.bias is bias


def test_a_file_with_python_objects_is_refused_with_how_to_convert_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "x": Payload()}, path)
    with pytest.raises(ValueError, match=r"evil.pth is not a plain tensor checkpoint.*safetensors") as err:
        load_dit(path)
    assert "weights_only=False" not in str(err.value)  # never advise loading it unsafely


def test_odd_config_metadata_fails_at_load_naming_the_file(tmp_path):
    from safetensors.torch import save_file

    odd = DiTConfig(hidden_size=24, depth=2, num_heads=2, input_size=2, lats_per_vid=1, attn_layout="official")
    model = CascadeDiT(odd)
    meta = {METADATA_CONFIG_KEY: odd.to_json()}
    path = tmp_path / "odd.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    with pytest.raises(ValueError, match=r"odd.safetensors: its config \(lats_per_vid=1, input_size=2"):
        load_dit(path)
