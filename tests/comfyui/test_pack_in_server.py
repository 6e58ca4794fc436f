"""The pack inside a real ComfyUI server: import, node registry, a queued graph, validation errors."""

import ast
import json
from pathlib import Path

import pytest
from make_tiny_models import with_tiny_models

pytestmark = pytest.mark.comfyui

REPO = Path(__file__).resolve().parents[2]
DEMO_WORKFLOW = REPO / "workflows" / "api" / "cascadev_refine_video.json"


def declared_nodes() -> dict[str, dict]:
    """node_id -> {category, display_name} for every ``io.Schema(...)`` call in nodes/, read from the source."""
    found = {}
    for path in sorted((REPO / "nodes").glob("*.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "Schema":
                kw = {k.arg: k.value for k in call.keywords}
                found[ast.literal_eval(kw["node_id"])] = {
                    "category": ast.literal_eval(kw["category"]),
                    "display_name": ast.literal_eval(kw["display_name"]),
                }
    return found


def test_pack_imports_without_failure(comfy_server, object_info):
    log = comfy_server.read_log()
    pack_lines = [line for line in log.splitlines() if "ComfyUI-CascadeV" in line]
    assert pack_lines, "the server log never mentions the pack: it was not found in custom_nodes"
    assert not [line for line in pack_lines if "IMPORT FAILED" in line or "Error" in line], "\n".join(pack_lines)


def test_object_info_lists_every_declared_node(object_info):
    declared = declared_nodes()
    assert len(declared) >= 7
    for node_id, meta in declared.items():
        assert node_id in object_info, f"{node_id} missing from /object_info"
        info = object_info[node_id]
        assert info["category"] == meta["category"]
        assert info["category"].startswith("CascadeV/")
        assert info["display_name"] == meta["display_name"]
        assert info["python_module"].endswith("ComfyUI-CascadeV")


def test_every_input_has_a_tooltip(object_info):
    for node_id in declared_nodes():
        for section in ("required", "optional"):
            for name, spec in object_info[node_id]["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_model_folder_is_registered_and_lists_generated_weights(object_info):
    options = object_info["CascadeVModelLoader"]["input"]["required"]["dit_name"][1]["options"]
    assert "tiny_cascadev_dit.safetensors" in options


def test_shipped_api_workflow_runs_and_history_has_the_output(comfy_server, demo_inputs):
    prompt = with_tiny_models(json.loads(DEMO_WORKFLOW.read_text()))
    prompt["24"]["inputs"]["steps"] = 2
    prompt["26"]["inputs"].update(tile_size=128, tile_overlap=32, frames_per_slice=3)  # tiled, sliced decode
    entry = comfy_server.wait(comfy_server.queue(prompt), timeout=900)
    assert entry["status"]["status_str"] == "success", entry["status"]
    videos = entry["outputs"]["27"]["images"]
    assert len(videos) == 1 and videos[0]["filename"].endswith(".mp4")
    saved = comfy_server.base / "output" / videos[0]["subfolder"] / videos[0]["filename"]
    assert saved.stat().st_size > 1000


def test_bad_input_value_is_rejected_naming_the_input(comfy_server):
    prompt = with_tiny_models(json.loads(DEMO_WORKFLOW.read_text()))
    prompt["24"]["inputs"]["sampler"] = "no_such_sampler"
    status, body = comfy_server.post("/prompt", {"prompt": prompt})
    assert status == 400
    errors = body["node_errors"]["24"]["errors"]
    assert errors[0]["details"].startswith("sampler - sampler: 'no_such_sampler' is not one of euler_a"), errors


def test_missing_model_file_error_names_folder_and_file(comfy_server, demo_inputs):
    prompt = with_tiny_models(json.loads(DEMO_WORKFLOW.read_text()))
    prompt["21"]["inputs"]["dit_name"] = "missing_model.pth"
    status, body = comfy_server.post("/prompt", {"prompt": prompt})
    assert status == 400
    details = body["node_errors"]["21"]["errors"][0]["details"]
    assert "dit_name: CascadeV DiT file 'missing_model.pth' was not found in the models/cascadev folder" in details
