"""CascadeDiT against the outputs of the official implementation (tiny random weights, float32, CPU)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from cascadev_core.config import DiTConfig
from cascadev_core.dit import CascadeDiT
from cascadev_core.pos_embed import video_pos_embed

REFERENCE = Path(
    os.environ.get(
        "CASCADEV_REFERENCE_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "cascadev"
    )
)
pytestmark = pytest.mark.usefixtures("reference_dir")  # skips, or fails in CI, without the reference data

# (case, layout) pairs that dit_forward.safetensors holds outputs for
CASES = [
    ("v1", "grid_official_scaled"),
    ("v1", "full"),
    ("v1", "grid_alt_cyclic"),
    ("v2", "grid_official_scaled"),
]


@pytest.fixture(scope="module")
def fixtures() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(REFERENCE / "dit_forward.safetensors"))


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(REFERENCE / "dit_tiny.safetensors"))


@pytest.fixture(scope="module")
def runs(fixtures, weights):
    """Lazily computed ``(case, layout) -> (output, per-block records)``, each forward once per module.

    A record is ``(shape as the official code groups the block's tokens [videos*groups, tokens, D],
    [mean, std, absmax, l2] of the block output)``.
    """
    cache: dict[tuple[str, str], tuple[torch.Tensor, list]] = {}

    def get(case: str, layout: str) -> tuple[torch.Tensor, list]:
        if (case, layout) not in cache:
            model, records = _model(weights, layout), []

            def hook(_module, args, out):
                x, groups = args[0], args[2]
                y = out.double()
                stats = [y.mean().item(), y.std().item(), y.abs().max().item(), y.norm().item()]
                records.append(((x.shape[0] * groups, x.shape[1] // groups, x.shape[2]), stats))

            for block in model.blocks:
                block.register_forward_hook(hook)
            with torch.no_grad():
                out = model(fixtures[f"{case}.x"], fixtures[f"{case}.timestep"])
            cache[case, layout] = (out, records)
        return cache[case, layout]

    return get


@pytest.fixture(scope="module")
def outputs(runs):
    """``(case, layout) -> model output``."""
    return lambda case, layout: runs(case, layout)[0]


def _model(weights, layout: str) -> CascadeDiT:
    cfg = DiTConfig.from_reference_json(REFERENCE / "dit_tiny.json", layout)
    model = CascadeDiT(cfg).eval()
    model.load_state_dict(weights, strict=True)
    return model


def test_config_from_reference_json():
    doc = json.loads((REFERENCE / "dit_tiny.json").read_text())
    cfg = DiTConfig.from_reference_json(doc)
    assert (cfg.hidden_size, cfg.depth, cfg.num_heads, cfg.patch_size) == (72, 7, 4, 2)
    assert (cfg.in_channels, cfg.out_channels, cfg.lats_per_vid, cfg.pe_interpolation) == (20, 8, 8, 2.0)
    assert cfg.input_size == 16  # the sampler tile entry
    assert cfg.attn_layout == [[1, 4], [4, 1], None, [1, 4], [4, 1], None, None]
    assert DiTConfig.from_reference_json(doc, "full").attn_layout is None
    assert DiTConfig.from_reference_json(doc, "grid_alt_cyclic").attn_layout == [[2, 2], [8, 1], [1, 2]]
    with pytest.raises(ValueError, match="'nope' not in reference json"):
        DiTConfig.from_reference_json(doc, "nope")
    # the manifest of the released model uses the same reader ('model' section)
    released = DiTConfig.from_reference_json(REFERENCE / "manifest_s1024.json")
    assert released.to_dict() == {**DiTConfig.s1024().to_dict(), "attn_layout": released.to_dict()["attn_layout"]}


@pytest.mark.parametrize(("case", "layout"), CASES, ids=[f"{c}-{lay}" for c, lay in CASES])
def test_forward_matches_official(fixtures, outputs, case, layout):
    out = outputs(case, layout)
    ref = fixtures[f"{case}.out.{layout}"]
    assert out.shape == ref.shape and out.dtype == torch.float32
    err = (out - ref).abs().max().item()
    print(f"{case}/{layout}: max abs diff {err:.3g}")
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_layouts_really_differ(outputs):
    """The three v1 layouts give clearly different outputs (README: 0.32 .. 0.37), so parity is not vacuous."""
    outs = {layout: outputs("v1", layout) for layout in ("grid_official_scaled", "full", "grid_alt_cyclic")}
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert (outs[a] - outs[b]).abs().max() > 0.1, (a, b)


def test_block_outputs_match_official_probes(runs):
    """Per-block shapes as the official code groups them ([videos*groups, tokens, D]) and output statistics."""
    probes = json.loads((REFERENCE / "dit_forward.json").read_text())["block_probes"]
    assert len(probes) == 3
    for key, expected in probes.items():
        case, layout = key.split(".", 1)
        records = runs(case, layout)[1]
        assert len(records) == len(expected)
        for (shape, got), probe in zip(records, expected):
            assert list(shape) == probe["block_input_shape"], (key, probe["block"])
            stats = probe["stats"]
            want = [stats["mean"], stats["std"], stats["absmax"], stats["l2"]]
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), (key, probe["block"])


def test_pos_embed_matches_official(fixtures):
    ours = video_pos_embed(72, 8, 8, 8, 2.0)  # v2: 16x16 latent = 8x8 tokens, 8 frames
    assert torch.equal(ours, fixtures["v2.pos_embed"])
    from safetensors.torch import load_file

    official = load_file(str(REFERENCE / "pos_embed_s1024.safetensors"))["pos_embed.grid2.pe2.0.L8"]
    assert torch.equal(video_pos_embed(1152, 8, 2, 2, 2.0), official)
    # top-left corner of the released 64x64 grid: same positions (i/2, j/2) for every frame
    big = video_pos_embed(1152, 8, 64, 64, 2.0).reshape(8, 64, 64, 1152)[:, :2, :2]
    assert torch.equal(big.reshape(1, 32, 1152), official)


def test_bitwise_repeatable(fixtures, weights, outputs):
    """A second run, and a fresh model given frames_per_video explicitly, reproduce the output bit for bit."""
    model = _model(weights, "grid_official_scaled")
    with torch.no_grad():
        again = model(fixtures["v2.x"], fixtures["v2.timestep"], frames_per_video=8)
    assert torch.equal(outputs("v2", "grid_official_scaled"), again)


def test_frames_per_video_and_timestep_semantics(fixtures, weights):
    """Blocks read each video's first-frame timestep; the final layer each frame's own; videos are independent."""
    model = _model(weights, "grid_official_scaled")
    x, t = fixtures["v2.x"], fixtures["v2.timestep"]
    with torch.no_grad():
        both = model(x, t)
        second = model(x[8:], t[8:])  # video 1 alone: positions restart at 0, same result
        t_changed = t.clone()
        t_changed[9] += 100.0  # a non-first frame: only that frame's final layer sees it
        changed = model(x, t_changed)
    torch.testing.assert_close(second, both[8:], atol=1e-5, rtol=1e-5)
    diff = (changed - both).abs().amax(dim=(1, 2, 3))
    assert diff[9] > 1e-2 and diff[[i for i in range(16) if i != 9]].max() == 0
