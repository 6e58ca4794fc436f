"""The shipped workflows against the real server: node types, links, widget values, /prompt validation, runs."""

import json
from pathlib import Path

import pytest
from build_workflows import MODELS, WORKFLOW_SPECS, widget_names
from make_tiny_models import with_tiny_models

pytestmark = pytest.mark.comfyui

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
FRONTEND_ONLY = {"MarkdownNote", "Note"}
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
#: the workflows as the first release shipped them: what users have saved (they must keep loading and running)
SAVED = Path(__file__).with_name("saved_workflows")
SAVED_API_FILES = sorted(SAVED.glob("api_*.json"))


def test_every_spec_is_shipped_in_both_formats():
    assert {p.stem for p in UI_FILES} == set(WORKFLOW_SPECS) == {p.stem for p in API_FILES}


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_nodes_links_and_widgets_are_valid(path, object_info):
    wf = json.loads(path.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    for n in nodes.values():
        assert n["type"] in object_info or n["type"] in FRONTEND_ONLY, f"unknown node type {n['type']}"
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        out_kind = object_info[nodes[src]["type"]]["output"][src_slot]
        dst_input = nodes[dst]["inputs"][dst_slot]
        assert dst_input["link"] == link_id and link_id in nodes[src]["outputs"][src_slot]["links"]
        assert kind == out_kind and dst_input["type"] in (out_kind, "*"), f"link {link_id}: {out_kind} -> {dst_input}"
    for n in nodes.values():
        if n["type"] in FRONTEND_ONLY:
            continue
        info = object_info[n["type"]]
        linked = {i["name"] for i in n["inputs"] if i.get("link") is not None}
        values = iter(n["widgets_values"])
        for name, control in widget_names(info):
            if name in linked:
                continue
            value = next(values)
            spec = info["input"]["required"].get(name) or info["input"]["optional"][name]
            check_widget(n, name, spec, value)
            if control:
                assert next(values) in ("fixed", "increment", "decrement", "randomize")
        leftover = list(values)
        assert leftover in ([], ["image"]), f"{n['type']} #{n['id']}: extra widget values {leftover}"


def check_widget(node: dict, name: str, spec: list, value) -> None:
    kind, opts = spec[0], spec[1] if len(spec) > 1 else {}
    where = f"{node['type']} #{node['id']}.{name} = {value!r}"
    if isinstance(kind, list) or kind == "COMBO":
        options = kind if isinstance(kind, list) else opts["options"]
        if value in MODELS:  # a model file: the loader must carry its download metadata instead
            assert value in {m["name"] for m in node["properties"]["models"]}, where
        elif node["type"] not in ("LoadImage", "LoadVideo"):
            assert value in options, f"{where} not in {options}"
    elif kind in ("INT", "FLOAT"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        assert opts.get("min", value) <= value <= opts.get("max", value), where
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    elif kind == "STRING":
        assert isinstance(value, str), where


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_names_its_models_in_a_note(path):
    wf = json.loads(path.read_text())
    note = next(n for n in wf["nodes"] if n["type"] == "MarkdownNote")["widgets_values"][0]
    for n in wf["nodes"]:
        for model in n.get("properties", {}).get("models", []):
            assert model["name"] in note and model["url"].startswith("https://")
            assert model["directory"] in {
                "cascadev",
                "vae",
                "diffusion_models",
                "text_encoders",
                "clip_vision",
                "checkpoints",
            }


@pytest.fixture(scope="session")
def placeholder_models(comfy_server):
    """Empty files with the real model names: /prompt validation only checks that the names exist."""
    for name, (_, folder) in MODELS.items():
        path = comfy_server.base / "models" / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_api_workflow_passes_prompt_validation(path, comfy_server, placeholder_models, demo_inputs):
    prompt = json.loads(path.read_text())
    # Validation accepts it; then the run fails fast on the empty placeholder weights, which is expected.
    entry = comfy_server.wait(comfy_server.queue(prompt), timeout=300)
    assert entry["status"]["status_str"] in ("success", "error")


@pytest.mark.parametrize("path", SAVED_API_FILES, ids=lambda p: p.stem)
def test_workflows_saved_with_the_first_release_still_pass_validation(path, comfy_server, placeholder_models):
    status, body = comfy_server.post("/prompt", {"prompt": json.loads(path.read_text())})
    assert status == 200, json.dumps(body)[:3000]
    comfy_server.wait(body["prompt_id"], timeout=300)  # it then fails fast on the empty placeholder weights


def test_refine_workflow_saved_with_the_first_release_still_runs_unchanged(comfy_server, demo_inputs):
    """Only the model file names are swapped for the tiny stand-ins; its Encode Frames has none of the new inputs,
    so the frames are scaled to the released model's 1024-pixel tile (the 'auto' default)."""
    prompt = with_tiny_models(json.loads((SAVED / "api_cascadev_refine_video.json").read_text()))
    entry = comfy_server.wait(comfy_server.queue(prompt), timeout=1500)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    assert entry["outputs"]["27"]["images"][0]["filename"].endswith(".mp4")


def tiny_chunk_graph(candidates=3, preview_steps=1, steps=3, chunks=2) -> dict:
    """The shipped Wan I2V long-video graph on tiny weights: no text encoder (zero prompt), small sizes."""
    prompt = with_tiny_models(json.loads((WORKFLOWS / "api" / "cascadev_long_video_wan_i2v.json").read_text()))
    drop = {k for k, n in prompt.items() if n["class_type"] in ("CLIPLoader", "CLIPTextEncode", "CLIPVisionLoader")}
    for k in drop:
        del prompt[k]
    for node in prompt.values():
        for name in [n for n, v in node["inputs"].items() if isinstance(v, list) and v[0] in drop]:
            del node["inputs"][name]
    prompt["8"]["inputs"].update(width=64, height=64, length=5)
    prompt["9"]["inputs"].update(candidates=candidates, preview_steps=preview_steps, score_size=0)
    prompt["10"]["inputs"].update(chunks=chunks, steps=steps, cfg=1.0)
    return prompt


def test_chunk_sampler_workflow_runs_on_tiny_wan(comfy_server, demo_inputs):
    entry = comfy_server.wait(comfy_server.queue(tiny_chunk_graph()), timeout=900)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    video = entry["outputs"]["11"]["images"][0]
    assert (comfy_server.base / "output" / video["subfolder"] / video["filename"]).stat().st_size > 500
    report = json.loads(entry["outputs"]["12"]["text"][0])
    assert report["mode"] == "search" and len(report["chunks"]) == 2
    assert report["evaluations"] == 2 * (3 * 1 + 3)  # n * (m*k + s)
    assert report["num_frames"] == 5 + 4  # the second chunk's guide frame is not repeated
    for chunk in report["chunks"]:
        assert chunk["chosen_index"] == max(range(3), key=lambda i: chunk["candidate_scores"][i])


def test_interrupt_stops_chunk_search_within_one_evaluation_and_writes_nothing(comfy_server, demo_inputs):
    import asyncio
    import uuid

    import aiohttp

    prompt = tiny_chunk_graph(candidates=4, preview_steps=40, steps=200, chunks=3)
    prompt["11"]["inputs"]["filename_prefix"] = "cascadev/interrupted"
    client_id = uuid.uuid4().hex

    async def run() -> tuple[int, list, dict]:
        url = f"{comfy_server.url}/ws?clientId={client_id}"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            status, body = comfy_server.post("/prompt", {"prompt": prompt, "client_id": client_id})
            assert status == 200, body
            after, interrupted_at = [], None
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data["type"] == "progress" and data["data"]["node"] == "10":
                    if interrupted_at is None and data["data"]["value"] >= 3:
                        interrupted_at = data["data"]["value"]
                        comfy_server.post("/interrupt", {})
                    elif interrupted_at is not None:
                        after.append(data["data"]["value"])
                if data["type"] in ("execution_interrupted", "execution_error", "execution_success"):
                    return interrupted_at, after, data
        raise AssertionError("websocket closed before the run ended")

    interrupted_at, after, last = asyncio.run(asyncio.wait_for(run(), timeout=600))
    assert last["type"] == "execution_interrupted" and last["data"]["node_id"] == "10", last
    assert len(after) <= 1, f"{len(after)} more evaluations ran after the interrupt (at {interrupted_at})"
    entry = comfy_server.wait(last["data"]["prompt_id"], timeout=60)
    assert entry["status"]["status_str"] == "error" and "11" not in entry["outputs"]
    assert not list((comfy_server.base / "output").rglob("interrupted*"))
