"""A memory budget picks the window/tile batch of the refine; the estimate behind it is the documented formula."""

import pytest
import torch

from cascadev_core.config import DiTConfig
from cascadev_core.dit import CascadeDiT
from cascadev_core.memory import activation_bytes, attention_scores_bytes, max_batch_for_budget, tokens_per_job
from cascadev_core.refine import RefineOptions, refine

pytestmark = pytest.mark.usefixtures("single_thread")

RELEASED = DiTConfig()


def test_released_model_estimate_matches_the_formula():
    assert tokens_per_job(RELEASED, 8, 128) == 8 * 64 * 64
    assert activation_bytes(RELEASED, 8, 128, batch=3, dtype_bytes=2) == 3 * 32768 * 12 * 1152 * 2
    # official layout: its largest groups are the full-attention blocks (all 32768 tokens, 16 heads, fp32)
    assert attention_scores_bytes(RELEASED, "official", 8, 128) == 32768**2 * 16 * 4


def test_batch_for_budget_is_the_largest_that_fits_and_clamped():
    per_job = activation_bytes(RELEASED, 8, 128)
    assert max_batch_for_budget(RELEASED, 8, 128, 5 * per_job + per_job // 2, jobs=100) == 5
    assert max_batch_for_budget(RELEASED, 8, 128, per_job - 1, jobs=100) == 1  # one job is the floor
    assert max_batch_for_budget(RELEASED, 8, 128, 1000 * per_job, jobs=7) == 7  # never more than there are
    with pytest.raises(ValueError, match="budget_bytes"):
        max_batch_for_budget(RELEASED, 8, 128, 0, jobs=3)


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
    per_job = activation_bytes(config, 8, 8, dtype_bytes=4)
    reference, calls_one_by_one = tiny_refine()
    budgeted, calls_budgeted = tiny_refine(memory_budget=4 * per_job)
    assert calls_one_by_one == 2 * 9 and calls_budgeted == 2 * 3  # 9 tiles, 4 per call -> 3 calls per step
    # batching only changes kernel-level rounding (as max_batch does): relative to the output's scale
    assert (budgeted - reference).abs().max() <= 1e-5 * reference.abs().max()


def test_memory_budget_needs_a_dit():
    with pytest.raises(ValueError, match="memory_budget: needs a CascadeDiT"):
        refine(lambda x, t, n: x[:, :8], torch.zeros(1, 16, 8, 2, 2), lats_per_vid=8, input_size=8,
               options=RefineOptions(steps=1, memory_budget=10**9))  # fmt: skip
