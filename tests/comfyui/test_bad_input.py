"""Every bad input gets a clean answer from the real server: 400 with a message naming the input (no traceback, no
server path), one error per bad value, and the server keeps serving."""

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from make_tiny_models import with_tiny_models
from test_pack_in_server import DEMO_WORKFLOW

pytestmark = pytest.mark.comfyui

DEEP = "[" * 100_000 + "]" * 100_000
NESTED = "[" * 2_000 + "]" * 2_000  # within the schedule's 10,000 characters, over Python's recursion limit


def get(server, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.mark.parametrize(
    "query, parameter",
    [
        ({"frames": "0"}, "frames"),
        ({"frames": "-8"}, "frames"),
        ({"frames": "10" * 20}, "frames"),
        ({"tile": "0"}, "tile"),
        ({"tile": "1"}, "tile"),
        ({"tile": "33"}, "tile"),
        ({"max_batch": "-5"}, "max_batch"),
        ({"max_batch": "many"}, "max_batch"),
        ({"layout": "[" * 1200 + "]" * 1200}, "layout"),  # fits a URL, still over Python's recursion limit
        ({"layout": "[[1e400, 4]]"}, "layout"),
        ({"layout": "[[3, 4]]"}, "layout"),  # 8 frames do not split into 3 chunks
        ({"layout": "nonsense"}, "layout"),
        ({"weight_dtype": "fp8"}, "weight_dtype"),
        ({"dit_name": "../../etc/passwd"}, "dit_name"),
    ],
)
def test_attention_cost_route_answers_bad_parameters_with_400_naming_them(comfy_server, query, parameter):
    status, body = get(comfy_server, "/cascadev/attention_cost?" + urllib.parse.urlencode(query))
    assert status == 400, body
    assert body["parameter"] == parameter and body["error"].startswith(parameter), body


def test_attention_cost_route_follows_the_model_file_and_dtype(comfy_server):
    query = {"dit_name": "tiny_cascadev_dit.safetensors", "weight_dtype": "fp32", "layout": "official"}
    status, tiny = get(comfy_server, "/cascadev/attention_cost?" + urllib.parse.urlencode(query))
    assert status == 200, tiny
    assert (tiny["frames"], tiny["tile"]) == (8, 16)  # the tiny model's own window and tile, from its header
    status, released = get(comfy_server, "/cascadev/attention_cost?layout=official&weight_dtype=fp16")
    assert status == 200 and (released["frames"], released["tile"]) == (8, 128)
    assert tiny["activation_gib"] < released["activation_gib"]


def prompt_errors(server, prompt) -> dict:
    status, body = server.post("/prompt", {"prompt": prompt})
    assert status == 400, body
    text = json.dumps(body)
    assert "Traceback" not in text and "/tmp/" not in text and "site-packages" not in text, text[:2000]
    return body["node_errors"]


@pytest.mark.parametrize("value", [123, None, 1.5, DEEP[:5000]])  # (a list is a link in the API format)
def test_a_bad_model_name_is_one_clean_error_on_that_input(comfy_server, value):
    prompt = with_tiny_models(json.loads(DEMO_WORKFLOW.read_text()))
    prompt["21"]["inputs"]["dit_name"] = value
    errors = prompt_errors(comfy_server, prompt)["21"]["errors"]
    assert [e["extra_info"]["input_name"] for e in errors] == ["dit_name"], errors


@pytest.mark.parametrize("schedule", [DEEP, NESTED, "[[1e400, 4]]", "[[1, 4], 7]", '{"window": 3}', ""])
def test_a_bad_layout_schedule_is_one_clean_error_on_that_input(comfy_server, schedule):
    prompt = {"1": {"class_type": "CascadeVAttentionLayout", "inputs": {"schedule": schedule}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip
    errors = prompt_errors(comfy_server, prompt)["1"]["errors"]
    assert [e["extra_info"]["input_name"] for e in errors] == ["schedule"], errors
    assert errors[0]["details"].startswith("schedule - "), errors


def test_decode_refuses_an_overlap_as_large_as_its_tile_before_work(comfy_server):
    prompt = with_tiny_models(json.loads(DEMO_WORKFLOW.read_text()))
    prompt["26"]["inputs"].update(tile_size=64, tile_overlap=64)
    errors = prompt_errors(comfy_server, prompt)["26"]["errors"]
    assert errors and all("tile_overlap (64) must be smaller than tile_size (64)" in e["details"] for e in errors)


def test_the_server_still_serves_after_the_sweep(comfy_server):
    status, body = get(comfy_server, "/system_stats")
    assert status == 200 and "system" in body


def test_a_checkpoint_with_python_objects_is_refused_by_name_without_server_paths(comfy_server):
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = comfy_server.base / "models" / "cascadev" / "untrusted.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": Payload()}, path)
    prompt = {"1": {"class_type": "CascadeVModelLoader",
                    "inputs": {"dit_name": "untrusted.pth", "weight_dtype": "fp32", "attention_layout": "official"}},
              "2": {"class_type": "CascadeVAsModel", "inputs": {"cascadev_model": ["1", 0],
                                                                "conditioning": ["3", 0]}},
              "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
              "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 3]}}}  # fmt: skip
    entry = comfy_server.wait(comfy_server.queue(prompt), timeout=300)
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "1", error
    message = error["exception_message"]
    assert message.startswith("dit_name: untrusted.pth is not a plain tensor checkpoint"), message
    assert str(comfy_server.base) not in message and "weights_only=False" not in message


def execution_error(server, prompt) -> dict:
    entry = server.wait(server.queue(prompt), timeout=300)
    return next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")


def test_a_size_that_cannot_fit_is_refused_before_any_work_with_the_bytes_it_needs(comfy_server):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 64, "color": 0}},
        "2": {"class_type": "CascadeVEffnetLoader",
              "inputs": {"effnet_name": "tiny_effnet_encoder.safetensors", "weight_dtype": "fp32"}},
        "3": {"class_type": "CascadeVEncode",
              "inputs": {"effnet": ["2", 0], "images": ["1", 0], "resize": "long_side", "resize_value": 16384.0}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }  # fmt: skip
    error = execution_error(comfy_server, prompt)
    assert error["node_id"] == "3" and error["exception_type"].endswith("DoesNotFit"), error
    message = error["exception_message"]
    assert message.startswith("CascadeV Encode Frames: images: 64 frames of 16384x16384 pixels needs about"), message
    assert "GiB" in message and "choose a smaller resize" in message


def test_a_chunk_size_that_cannot_fit_is_refused_before_any_work(comfy_server, demo_inputs):
    from test_workflows import tiny_chunk_graph

    prompt = tiny_chunk_graph()
    prompt["8"]["inputs"].update(width=8192, height=8192, length=4093)
    error = execution_error(comfy_server, prompt)
    assert error["node_id"] == "10" and error["exception_type"].endswith("DoesNotFit"), error
    assert "CascadeV Chunk Sampler: i2v: 2 chunks of 4093 frames at 8192x8192 pixels" in error["exception_message"]
