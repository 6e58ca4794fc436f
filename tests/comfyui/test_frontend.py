"""The real ComfyUI frontend in headless Chromium: shipped UI workflows load with no missing nodes and no console
errors from the pack, and the pack's canvas widgets render (screenshots are kept under ``output/screenshots``)."""

import importlib.util
import json
import os
from pathlib import Path

import pytest
from frontend_browser import chromium_path, comfy_page, load_workflow
from test_workflows import tiny_chunk_graph

pytestmark = pytest.mark.comfyui

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "output" / "screenshots"
UI_FILES = sorted((REPO / "workflows").glob("*.json"))

if chromium_path() is None or importlib.util.find_spec("playwright") is None:
    if os.environ.get("CASCADEV_REQUIRE_BROWSER"):
        raise RuntimeError("CASCADEV_REQUIRE_BROWSER is set but chromium or playwright is missing")
    pytest.skip("needs Debian's chromium and the playwright package", allow_module_level=True)


@pytest.fixture(scope="module")
def page(comfy_server, demo_inputs):
    with comfy_page(comfy_server) as (page, log):
        page.log = log
        yield page


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_loads_without_missing_nodes_or_pack_errors(page, path):
    nodes = load_workflow(page, json.loads(path.read_text()))
    assert len(nodes) == len(json.loads(path.read_text())["nodes"])
    assert [n["type"] for n in nodes if not n["registered"]] == []
    assert [n["type"] for n in nodes if n["errors"]] == []
    for n in nodes:  # our DOM widgets exist and never took a serialised widget's place
        if n["type"] == "CascadeVChunkSampler":
            assert "candidates" in n["widgets"]
    assert page.log.pack_errors() == []


def test_refine_node_shows_attention_cost_estimate(page):
    load_workflow(page, json.loads((REPO / "workflows" / "cascadev_refine_video.json").read_text()))
    cost = page.locator(".cascadev-cost").first
    cost.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.cascadev-cost')].some(e => e.textContent.includes('of full 3D'))",
        timeout=30_000,
    )
    text = cost.text_content()
    assert "51.8% of full 3D" in text and "32,768 tokens" in text, text  # official layout, 8 x 64 x 64 tokens
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "refine_attention_cost.png"))
    assert page.log.pack_errors() == []


def test_chunk_sampler_shows_live_candidate_thumbnails(page, comfy_server):
    load_workflow(page, json.loads((REPO / "workflows" / "cascadev_long_video_wan_i2v.json").read_text()))
    entry = comfy_server.wait(comfy_server.queue(tiny_chunk_graph(candidates=3, chunks=1)), timeout=900)
    assert entry["status"]["status_str"] == "success"
    page.wait_for_function("() => document.querySelectorAll('.cascadev-cand img').length >= 4", timeout=30_000)
    chosen = page.locator(".cascadev-cand.chosen")
    assert chosen.count() == 1 and page.locator(".cascadev-cand.final").count() == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "chunk_sampler_candidates.png"))
    assert page.log.pack_errors() == []


def test_saved_workflows_hold_only_the_widget_inputs_of_each_node(page, object_info):
    """The canvas panels (attention estimate, candidate thumbnails) never enter widgets_values: a workflow saved by
    the real frontend has exactly one value per widget input (plus seed controls) on every pack node."""
    from build_workflows import widget_names

    for name in ("cascadev_refine_video", "cascadev_long_video_wan_i2v"):
        load_workflow(page, json.loads((REPO / "workflows" / f"{name}.json").read_text()))
        page.wait_for_timeout(2000)  # the panels are created and updated on their own timers
        saved = page.evaluate("() => window.app.graph.serialize()")
        for node in saved["nodes"]:
            if node["type"].startswith("CascadeV"):
                widgets = widget_names(object_info[node["type"]])
                linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
                expected = sum(1 + control for n, control in widgets if n not in linked)
                assert len(node["widgets_values"]) == expected, (node["type"], node["widgets_values"])


@pytest.mark.parametrize("path", sorted((REPO / "tests" / "comfyui" / "saved_workflows").glob("ui_*.json")),
                         ids=lambda p: p.stem)  # fmt: skip
def test_workflows_saved_with_the_first_release_still_load(page, path):
    nodes = load_workflow(page, json.loads(path.read_text()))
    assert [n["type"] for n in nodes if not n["registered"]] == []
    assert [n["type"] for n in nodes if n["errors"]] == []
    assert page.log.pack_errors() == []
