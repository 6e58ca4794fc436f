"""The memory estimate of one DiT call against the MEASURED peak of real forwards, and the budgeted refine batch."""

import copy

import pytest
import torch

from cascadev_core.config import DiTConfig
from cascadev_core.dit import CascadeDiT
from cascadev_core.live_bytes import LiveTensorBytes
from cascadev_core.memory import (
    activation_bytes,
    attention_scores_bytes,
    call_bytes,
    max_batch_for_budget,
    model_call_bytes,
    tokens_per_job,
)
from cascadev_core.precision import Precision, apply_precision, resolve_precision
from cascadev_core.refine import RefineOptions, refine

pytestmark = pytest.mark.usefixtures("single_thread")

F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16
PRECISIONS = {
    "fp32": Precision("fp32", "cpu", F32, F32, F32, False),
    "fast-bf16": Precision("fast", "cpu", F32, BF16, BF16, False),
    "official-gpu": Precision("official", "cuda", F16, F16, F32, True),
    "bf16-everywhere": Precision("x", "cpu", BF16, BF16, BF16, False),
}
CONFIGS = {  # (config, latent tile): the released width on a small tile, a narrow one with another MLP ratio
    "released-width": (DiTConfig(depth=2, attn_layout=[[1, 2], None], input_size=8), 8),
    "d96-mlp2": (
        DiTConfig(hidden_size=96, depth=3, num_heads=4, mlp_ratio=2.0, attn_layout=[[1, 2], [4, 1], None]),
        16,
    ),
}


@pytest.fixture(scope="module")
def fp32_models():
    """One float32 model per config, built once (building the released width takes seconds); tests cast copies."""
    torch.manual_seed(0)
    return {name: CascadeDiT(cfg).eval().requires_grad_(False) for name, (cfg, _) in CONFIGS.items()}


def measured_peak(model: CascadeDiT, tile: int, batch: int) -> int:
    """Peak bytes of live tensors allocated by one forward (fresh model: its position-embedding cache included)."""
    x = torch.randn(8 * batch, 20, tile, tile, generator=torch.Generator().manual_seed(0))
    t = torch.full((8 * batch,), 500.0)
    with torch.no_grad(), LiveTensorBytes() as meter:
        model(x, t)
    return meter.peak


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_estimate_is_within_25_percent_of_the_measured_peak(fp32_models, config_name, precision, batch):
    config, tile = CONFIGS[config_name]
    model = apply_precision(copy.deepcopy(fp32_models[config_name]), PRECISIONS[precision])
    measured = measured_peak(model, tile, batch)
    estimate = model_call_bytes(model, window=8, tile=tile, batch=batch)
    assert estimate == call_bytes(config, 8, tile, batch, PRECISIONS[precision])
    print(f"{config_name} {precision} batch {batch}: measured {measured / 2**20:.3f} MiB, estimate / measured "
          f"{estimate / measured:.3f}")  # fmt: skip
    assert 0.75 * measured <= estimate <= 1.25 * measured


def test_estimate_follows_mlp_ratio_and_dtypes():
    """Independent of the module's arithmetic: the measured peaks themselves move the way the estimate does."""
    narrow, wide = (DiTConfig(hidden_size=96, depth=1, num_heads=4, mlp_ratio=r, attn_layout=None) for r in (2.0, 8.0))
    peaks = {}
    for name, cfg in (("narrow", narrow), ("wide", wide)):
        for prec in ("fp32", "fast-bf16"):
            model = apply_precision(CascadeDiT(cfg).eval().requires_grad_(False), PRECISIONS[prec])
            peaks[name, prec] = (measured_peak(model, 16, 1), model_call_bytes(model, 8, 16, 1))
    for key, (measured, estimate) in peaks.items():
        assert abs(estimate / measured - 1) <= 0.25, key
    assert peaks["wide", "fp32"][0] > 1.35 * peaks["narrow", "fp32"][0]  # the MLP dominates at ratio 8
    assert peaks["wide", "fast-bf16"][0] < 0.7 * peaks["wide", "fp32"][0]  # bf16 matmuls halve the MLP tensors


def test_released_model_per_call_figures():
    """One released-size call (8 frames x 128^2 latent = 32768 tokens): the figures the canvas shows."""
    released = DiTConfig()
    assert tokens_per_job(released, 8, 128) == 8 * 64 * 64
    official = resolve_precision("official", "cuda")
    per_call = call_bytes(released, 8, 128, 1, official)
    # linear in the batch apart from the one-window position-embedding cache and the several-videos buffer
    assert call_bytes(released, 8, 128, 3, official) > 3 * per_call - 32768 * 1152 * 2 * 3
    assert activation_bytes(released, 8, 128, 1, dtype_bytes=2) == per_call  # the old entry point, same numbers
    # official layout: its largest groups are the full-attention blocks (all 32768 tokens, 16 heads, fp32 scores)
    assert attention_scores_bytes(released, "official", 8, 128) == 32768**2 * 16 * 4


def test_batch_for_budget_is_the_largest_that_fits_and_clamped():
    cfg = DiTConfig()
    fp32 = PRECISIONS["fp32"]
    five = call_bytes(cfg, 8, 128, 5, fp32)
    assert max_batch_for_budget(cfg, 8, 128, five, jobs=100, precision=fp32) == 5
    assert max_batch_for_budget(cfg, 8, 128, five - 1, jobs=100, precision=fp32) == 4
    assert max_batch_for_budget(cfg, 8, 128, 1, jobs=100, precision=fp32) == 1  # one job is the floor
    assert max_batch_for_budget(cfg, 8, 128, 1000 * five, jobs=7, precision=fp32) == 7  # never more than there are
    with pytest.raises(ValueError, match="budget_bytes"):
        max_batch_for_budget(cfg, 8, 128, 0, jobs=3)


def tiny_refine(**options):
    torch.manual_seed(0)
    config = DiTConfig(hidden_size=24, depth=2, num_heads=2, input_size=8, attn_layout="official")
    dit = CascadeDiT(config).eval()
    cond = torch.randn(1, 16, 8, 4, 4)  # latent 16x16: 9 tiles of 8 per window
    totals = []
    out = refine(dit, cond, lats_per_vid=8, input_size=8, options=RefineOptions(steps=2, **options), seed=1,
                 on_step=lambda done, total: totals.append(total))  # fmt: skip
    return out, totals[-1]


def test_memory_budget_sets_the_calls_per_step_and_keeps_the_numbers():
    config = DiTConfig(hidden_size=24, depth=2, num_heads=2, input_size=8)
    reference, calls_one_by_one = tiny_refine()
    budgeted, calls_budgeted = tiny_refine(memory_budget=call_bytes(config, 8, 8, 4, "fp32"))
    assert calls_one_by_one == 2 * 9 and calls_budgeted == 2 * 3  # 9 tiles, 4 per call -> 3 calls per step
    # batching only changes kernel-level rounding (as max_batch does): relative to the output's scale
    assert (budgeted - reference).abs().max() <= 1e-5 * reference.abs().max()


def test_memory_budget_needs_a_dit():
    with pytest.raises(ValueError, match="memory_budget: needs a CascadeDiT"):
        refine(lambda x, t, n: x[:, :8], torch.zeros(1, 16, 8, 2, 2), lats_per_vid=8, input_size=8,
               options=RefineOptions(steps=1, memory_budget=10**9))  # fmt: skip
