"""The chunk sampler's sampling in the real server on the tiny Wan 2.1 I2V: per-candidate noise for ancestral and
SDE samplers, a second expert, a SIGMAS input, and a preview longer than the schedule."""

import json

import pytest
from make_tiny_models import COMFY_FILES
from test_workflows import tiny_chunk_graph

pytestmark = pytest.mark.comfyui


def run_report(server, prompt) -> dict:
    entry = server.wait(server.queue(prompt), timeout=900)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    return json.loads(entry["outputs"]["12"]["text"][0])


def batch_difference(server, sampler_name: str) -> tuple[float, list[float]]:
    """Largest score difference of the same candidates run one at a time and all three in one model batch."""
    reports = []
    for batch_size in (1, 0):  # 0 = all candidates in one model batch
        prompt = tiny_chunk_graph(candidates=3, preview_steps=2, steps=3, chunks=1)
        prompt["9"]["inputs"]["batch_size"] = batch_size
        prompt["10"]["inputs"]["sampler_name"] = sampler_name
        reports.append(run_report(server, prompt))
    one_by_one, batched = (r["chunks"][0]["candidate_scores"] for r in reports)
    return max(abs(a - b) for a, b in zip(one_by_one, batched)), one_by_one


@pytest.mark.parametrize("sampler_name", ["euler_ancestral", "dpmpp_2m_sde"])
def test_candidates_do_not_depend_on_the_batch_under_stochastic_samplers(comfy_server, demo_inputs, sampler_name):
    """Every candidate's per-step noise comes from its own seed: one at a time or all three in one batch, the same
    candidates score the same. The only difference left is the model's own kernel rounding on a larger batch, which
    the deterministic euler sampler shows as well (with one batch generator the noise itself would differ: O(1))."""
    stochastic, scores = batch_difference(comfy_server, sampler_name)
    deterministic, _ = batch_difference(comfy_server, "euler")
    assert len(set(scores)) == 3  # the candidates differ from each other
    assert stochastic <= max(1e-6, 10 * deterministic), (stochastic, deterministic)


def test_the_low_noise_expert_takes_over_in_previews_and_full_runs(comfy_server, demo_inputs):
    """Wan 2.2 14B I2V's two experts (tiny stand-ins with different weights): the high-noise one alone, then with
    the low-noise one from step 2 of 4. The previews (2 steps) cross the same noise level, so the candidate scores
    change as well as the full run's. (Another shift on the same weights would not do: a flow model's prediction
    does not depend on its shift, and the schedule comes from the first model.)"""
    prompt = tiny_chunk_graph(candidates=2, preview_steps=2, steps=4, chunks=1)
    prompt["1"]["inputs"]["unet_name"] = COMFY_FILES["wan22_i2v_high"].name
    alone = run_report(comfy_server, prompt)
    low_noise = {"unet_name": COMFY_FILES["wan22_i2v_low"].name, "weight_dtype": "default"}
    prompt["13"] = {"class_type": "UNETLoader", "inputs": low_noise}
    prompt["10"]["inputs"].update(model_low_noise=["13", 0], switch_step=2)
    experts = run_report(comfy_server, prompt)
    assert experts["evaluations"] == alone["evaluations"] == 2 * 2 + 4  # m*k + s: the split adds no evaluation
    chunk_alone, chunk_experts = alone["chunks"][0], experts["chunks"][0]
    assert chunk_experts["candidate_seeds"] == chunk_alone["candidate_seeds"]
    assert chunk_experts["candidate_scores"] != chunk_alone["candidate_scores"]  # the previews switched
    assert chunk_experts["final_score"] != chunk_alone["final_score"]  # and the full run


def test_a_sigmas_input_sets_the_full_schedule_and_previews_resample_it(comfy_server, demo_inputs):
    prompt = tiny_chunk_graph(candidates=2, preview_steps=2, steps=20, chunks=1)
    prompt["13"] = {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple",
                                                               "steps": 5, "denoise": 1.0}}  # fmt: skip
    prompt["14"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    prompt["10"]["inputs"].update(sigmas=["13", 0], sampler=["14", 0])
    report = run_report(comfy_server, prompt)
    assert report["options"]["steps"] == 5  # the schedule's, not the widget's 20
    assert report["evaluations"] == 2 * 2 + 5


def test_a_preview_longer_than_the_schedule_runs_full_length_with_a_note(comfy_server, demo_inputs):
    prompt = tiny_chunk_graph(candidates=2, preview_steps=4, steps=2, chunks=1)
    report = run_report(comfy_server, prompt)
    assert any("preview_steps 4 > steps 2" in note for note in report["notes"]), report["notes"]
    assert report["evaluations"] == 2 * 2  # the previews are full runs: the winner's is reused
