"""Proof from the official templates: each video template of the installed ``comfyui-workflow-templates`` package,
with the cascade spliced after its video VAE decode (every template) or its sampler replaced by the chunk sampler
(image-to-video templates), spliced on the real canvas and converted by the real frontend (``templates.py``),
passes ``/prompt`` validation with the template's own model file names, then runs on tiny weights at the template's
default width and height (fewer frames and steps).

Each case adds a row (what ran, the result, the wall time) to ``$CASCADEV_TEMPLATE_TABLE`` (default
``/tmp/template_table.md``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import time
from pathlib import Path

import pytest
from frontend_browser import chromium_path, comfy_page
from make_tiny_models import TINY_DIT_CONFIG, with_tiny_models
from templates import (
    ADAPTERS,
    SAMPLERS,
    TEMPLATES,
    VIDEO_DECODES,
    UIGraph,
    load_template,
    splice,
    template_path,
)

from cascadev_core.sizing import cascade_size, tile_pixels

pytestmark = [pytest.mark.comfyui, pytest.mark.templates]

if chromium_path() is None or importlib.util.find_spec("playwright") is None:
    if os.environ.get("CASCADEV_REQUIRE_BROWSER"):
        raise RuntimeError("CASCADEV_REQUIRE_BROWSER is set but chromium or playwright is missing")
    pytest.skip("needs Debian's chromium and the playwright package", allow_module_level=True)

CASES = [(template_id, kind) for template_id, (_, kinds) in TEMPLATES.items() for kind in kinds]
TABLE = Path(os.environ.get("CASCADEV_TEMPLATE_TABLE", "/tmp/template_table.md"))
#: canvas-only node types (never sent to the server)
FRONTEND_ONLY = {"MarkdownNote", "Note", "PrimitiveNode", "Reroute"}
MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin", ".gguf", ".sft")
#: model folder of a loader input (class-specific first)
MODEL_FOLDERS = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision", "clip_name": "text_encoders", "clip_name1": "text_encoders",
    "clip_name2": "text_encoders", "unet_name": "diffusion_models", "vae_name": "vae", "ckpt_name": "checkpoints",
    "lora_name": "loras", "dit_name": "cascadev", "effnet_name": "cascadev", "model_name": "latent_upscale_models",
}  # fmt: skip
#: the tiny runs: frames at least this many (the node's own min and step: the cascade's one frame, chunks long
#: enough to join), steps, and the search (n chunks, m candidates, k preview steps)
RUN_FRAMES = {"cascade": 1, "chunk": 2}
RUN_STEPS, CHUNKS, CANDIDATES, PREVIEW_STEPS = 2, 2, 2, 1


# ----------------------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spliced(request, comfy_server, object_info, table) -> dict:
    """Every case spliced and converted in one browser page, which is closed before any run (an idle canvas keeps
    redrawing, taking CPU from the server): (template id, kind) -> ``(API prompt, plan key -> node id)``, or the
    reason to skip, or the error (a SpliceError names what the template no longer has)."""
    start, out = time.monotonic(), {}
    cases = selected_cases(request.session.items)
    with comfy_page(comfy_server) as (page, _):
        for template_id, kind in cases:
            if template_path(template_id) is None:
                out[template_id, kind] = f"{template_id} is not in the installed comfyui-workflow-templates"
                continue
            missing = missing_node_types(load_template(template_id), object_info)
            if missing:
                out[template_id, kind] = f"this ComfyUI lacks the template's nodes {missing}"
                continue
            try:
                out[template_id, kind] = splice(page, template_id, kind)
            except Exception as error:  # a SpliceError or the page's: that case fails, not the module
                out[template_id, kind] = error
    table.append({"template": f"({len(cases)} splices on the canvas and their conversions, one page)",
                  "result": "done", "wall s": f"{time.monotonic() - start:.0f}"})  # fmt: skip
    return out


def selected_cases(items) -> list[tuple[str, str]]:
    """The cases of this module that the session runs (``-k`` may have deselected some)."""
    params = [item.callspec.params for item in items if item.module.__name__ == __name__ and hasattr(item, "callspec")]
    return [(p["template_id"], p["kind"]) for p in params]


@pytest.fixture(scope="module")
def table():
    """Rows of the closing table; written to :data:`TABLE` after the module (whatever happened)."""
    rows: list[dict] = []
    yield rows
    header = ["template", "splice", "size (WxH)", "frames", "steps", "candidates", "result", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row.get(h, "")) for h in header) + " |" for row in rows]
    TABLE.write_text("\n".join(lines) + "\n")


@pytest.fixture
def row(request, table):
    """This case's row of the table (the test fills in what ran and its result) with the case's wall time."""
    params = request.node.callspec.params
    entry = {"template": f"{TEMPLATES[params['template_id']][0]} (`{params['template_id']}`)", "splice": params["kind"]}
    start = time.monotonic()
    yield entry
    entry["wall s"] = f"{time.monotonic() - start:.0f}"
    entry.setdefault("result", "failed")
    table.append(entry)


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------
def model_files(prompt: dict) -> list[tuple[str, str, str]]:
    """(node id, input name, file name) of every model file an API prompt names."""
    return [
        (node_id, name, value)
        for node_id, node in prompt.items()
        for name, value in node["inputs"].items()
        if isinstance(value, str) and value.endswith(MODEL_SUFFIXES)
    ]


def model_folder(class_type: str, input_name: str) -> str:
    """The ``models/`` folder a loader input lists its files from."""
    folder = MODEL_FOLDERS.get((class_type, input_name)) or MODEL_FOLDERS.get(input_name)
    assert folder, f"no model folder known for {class_type}.{input_name}: add it to MODEL_FOLDERS"
    return folder


def write_placeholders(base: Path, prompt: dict) -> None:
    """Empty model files named as in the prompt: /prompt validation only checks that the names exist."""
    for node_id, name, value in model_files(prompt):
        path = base / "models" / model_folder(prompt[node_id]["class_type"], name) / value
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch()


def write_input_images(inputs: Path, prompt: dict) -> None:
    """The templates' start images (their example files are not in the package): the demo guide under each name."""
    for node in prompt.values():
        if node["class_type"] == "LoadImage" and not (inputs / node["inputs"]["image"]).exists():
            shutil.copy(inputs / "cascadev_demo_guide.png", inputs / node["inputs"]["image"])


def missing_node_types(workflow: dict, object_info: dict) -> list[str]:
    """Node types of the template's active nodes that the running ComfyUI does not have."""
    graph = UIGraph(workflow, "")
    return sorted({graph.type_of(i) for i in graph.nodes if graph.is_active(i)} - set(object_info) - FRONTEND_ONLY)


def smallest_frames(spec: list, at_least: int) -> int:
    """The smallest frame count of at least ``at_least`` that an INT frames input allows (its min and step)."""
    opts = spec[1] if len(spec) > 1 else {}
    low, step = opts.get("min", 1), opts.get("step", 1) or 1
    return low + max(0, math.ceil((at_least - low) / step)) * step


def scaled_step(value: int, old_steps: int, new_steps: int) -> int:
    """A step index of an ``old_steps`` schedule at the same place of a ``new_steps`` one (10000 = 'to the end')."""
    return value if value >= old_steps else round(value * new_steps / old_steps)


def shrink(prompt: dict, object_info: dict, frames: int) -> dict:
    """Fewer frames, steps, chunks and candidates for the tiny run; widths and heights stay the template's."""
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        for name in ("length", "video_frames"):
            if isinstance(inputs.get(name), int):
                spec = object_info[kind]["input"]
                declared = spec["required"].get(name) or spec.get("optional", {}).get(name)
                inputs[name] = min(inputs[name], smallest_frames(declared, frames))
        if isinstance(inputs.get("steps"), int):
            old = inputs["steps"]
            inputs["steps"] = min(old, RUN_STEPS)
            for name in ("start_at_step", "end_at_step"):
                if isinstance(inputs.get(name), int):
                    inputs[name] = scaled_step(inputs[name], old, inputs["steps"])
            if inputs.get("switch_step"):
                inputs["switch_step"] = min(max(1, scaled_step(inputs["switch_step"], old, inputs["steps"])),
                                            inputs["steps"] - 1)  # fmt: skip
        if kind == "CascadeVChunkSampler":
            inputs["chunks"] = CHUNKS
        if kind == "CascadeVSearchOptions":
            inputs.update(mode="search", candidates=CANDIDATES, preview_steps=PREVIEW_STEPS)
    return prompt


def unmapped_models(api: dict, tiny: dict) -> list[str]:
    """Model files of the template that the tiny stand-ins do not cover yet (same loader, same file name)."""
    return sorted(
        value
        for node_id, name, value in model_files(api)
        if tiny[node_id]["class_type"] == api[node_id]["class_type"] and tiny[node_id]["inputs"].get(name) == value
    )


def video_node(prompt: dict) -> tuple[int, int, int]:
    """(width, height, frames) of the template's video: the node with a width, a height and a frame count."""
    for node in prompt.values():
        inputs = node["inputs"]
        frames = inputs.get("length", inputs.get("video_frames"))
        sized = all(isinstance(v, int) for v in (inputs.get("width"), inputs.get("height"), frames))
        if sized and not node["class_type"].startswith("CascadeV"):
            return inputs["width"], inputs["height"], frames
    raise AssertionError("no node with width, height and length in the template")


def saved_video(server, entry: dict, node_id: str) -> tuple[int, int, int]:
    """(width, height, frames) of the video a SaveVideo node wrote."""
    import av

    assert node_id in entry["outputs"], f"SaveVideo #{node_id} wrote nothing: {list(entry['outputs'])}"
    item = entry["outputs"][node_id]["images"][0]
    path = server.base / "output" / item["subfolder"] / item["filename"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.width, stream.height, frames


def check_splice(api: dict, added: dict, kind: str) -> None:
    """The frontend's API prompt holds the splice: the cascade reads the video decode's frames; the chunk sampler
    stands where the family node and the samplers were and its frames go on to the template's CreateVideo."""
    assert set(added.values()) <= set(api), f"the frontend dropped spliced nodes: {added} / {sorted(api)}"
    if kind == "cascade":
        frames_from = api[added["cascade22"]]["inputs"]["images"][0]
        assert api[frames_from]["class_type"] in VIDEO_DECODES, api[frames_from]
        return
    left = [n["class_type"] for n in api.values() if n["class_type"] in SAMPLERS | set(ADAPTERS)]
    assert left == [], f"the template's sampling is still in the graph: {left}"
    takers = [n["class_type"] for n in api.values() if n["inputs"].get("images") == [added["sampler"], 0]]
    assert takers == ["CreateVideo"], takers


def template_save(prompt: dict, added: dict) -> str:
    """The template's own SaveVideo (not the cascade's)."""
    ours = set(added.values())
    saves = [k for k, n in prompt.items() if n["class_type"] == "SaveVideo" and k not in ours]
    assert len(saves) == 1, f"expected the template's one SaveVideo, found {saves}"
    return saves[0]


# ----------------------------------------------------------------------------------------------------------------
# The test
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("template_id", "kind"), CASES, ids=[f"{t}-{k}" for t, k in CASES])
def test_spliced_template_passes_validation_and_runs_on_tiny_weights(
    template_id, kind, comfy_server, object_info, spliced, demo_inputs, row
):
    try:
        validate_and_run(spliced[template_id, kind], kind, comfy_server, object_info, demo_inputs, row)
    except pytest.skip.Exception as skipped:
        row.setdefault("result", f"skipped: {skipped.msg}")
        raise
    except BaseException as error:
        row["result"] = f"failed: {type(error).__name__}: {' '.join(str(error).split())[:160]}"
        raise
    row["result"] = "passed"


def validate_and_run(converted, kind, comfy_server, object_info, demo_inputs, row) -> None:
    """The spliced template passes /prompt validation with the template's model names, then runs on tiny weights."""
    if isinstance(converted, str):
        pytest.skip(converted)
    if isinstance(converted, Exception):
        raise converted
    api, added = converted
    check_splice(api, added, kind)
    write_input_images(demo_inputs, api)

    write_placeholders(comfy_server.base, api)
    status, body = comfy_server.post("/prompt", {"prompt": api})
    assert status == 200, f"/prompt rejected the spliced template: {json.dumps(body)[:3000]}"
    comfy_server.wait(body["prompt_id"], timeout=300)  # then it fails fast on the empty placeholder weights

    tiny = with_tiny_models(api)
    uncovered = unmapped_models(api, tiny)
    if uncovered:
        row["result"] = f"validated; no tiny stand-in for {', '.join(uncovered)}"
        pytest.skip(f"validated; no tiny stand-ins yet for {uncovered}")
    run = shrink(tiny, object_info, RUN_FRAMES[kind])
    entry = comfy_server.wait(comfy_server.queue(run), timeout=900)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:]

    base_video = saved_video(comfy_server, entry, template_save(run, added))
    if kind == "cascade":
        check_cascade(comfy_server, entry, run, added, base_video, row)
    else:
        check_chunks(entry, run, added, base_video, row)


def check_cascade(server, entry, run, added, base_video, row) -> None:
    """The template's video at its own size and frames, the refined one at the size the pack's sizing rules give."""
    width, height, frames = template_video = video_node(run)
    base_steps = [n["inputs"]["steps"] for n in run.values() if isinstance(n["inputs"].get("steps"), int)
                  and not n["class_type"].startswith("CascadeV")]  # fmt: skip
    steps = f"{'+'.join(map(str, base_steps))}, refine {run[added['cascade24']]['inputs']['steps']}"
    row.update(frames=frames, steps=steps, candidates="-")
    assert base_video == (width, height, frames), f"the template's video {base_video} != {template_video}"
    size = cascade_size(height, width, tile=tile_pixels(TINY_DIT_CONFIG["input_size"]))
    refined = saved_video(server, entry, added["cascade27"])
    assert refined == (size.width, size.height, frames), f"refined {refined}, sizing rules give {size}"
    row["size (WxH)"] = f"{width}x{height} -> {size.width}x{size.height}"


def check_chunks(entry, run, added, base_video, row) -> None:
    """The chunk sampler's report: n*(m*k+s) evaluations, each chunk's choice the best score, the chunks joined
    without repeating the guide frame; the template's saved video is the joined one at the adapter's size."""
    adapter = run[added["adapter"]]["inputs"]
    sampler = run[added["sampler"]]["inputs"]
    length = adapter.get("length", adapter.get("video_frames"))
    sigmas = sampler.get("sigmas")
    steps = run[sigmas[0]]["inputs"]["steps"] if sigmas else sampler["steps"]
    row.update(frames=f"{CHUNKS} x {length}", steps=steps, candidates=f"m={CANDIDATES}, k={PREVIEW_STEPS}")
    row["size (WxH)"] = f"{adapter['width']}x{adapter['height']}"
    report = json.loads(entry["outputs"][added["report"]]["text"][0])
    assert report["mode"] == "search" and len(report["chunks"]) == CHUNKS, report
    assert report["evaluations"] == CHUNKS * (CANDIDATES * PREVIEW_STEPS + steps), report["evaluations"]
    for chunk in report["chunks"]:
        scores = chunk["candidate_scores"]
        assert len(scores) == CANDIDATES
        assert chunk["chosen_index"] == max(range(CANDIDATES), key=lambda i: scores[i]), chunk
    joined = length + (CHUNKS - 1) * (length - 1)  # later chunks do not repeat their guide frame
    assert report["num_frames"] == joined, report["num_frames"]
    assert base_video == (adapter["width"], adapter["height"], joined), base_video
