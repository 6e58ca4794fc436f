"""Every image-to-video family in the real ComfyUI on tiny weights built by ComfyUI's own classes.

First each family's tiny models run through the stock nodes of its official template (the graphs name the real
model files; ``with_tiny_models`` swaps in the stand-ins); then every CascadeV adapter runs through the chunk
sampler and its report is checked.
"""

from __future__ import annotations

import json

import pytest
from make_tiny_models import with_tiny_models

pytestmark = pytest.mark.comfyui

PROMPT = "a red fox trotting through fresh snow"
GUIDE = "cascadev_demo_guide.png"


def node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def run(server, prompt: dict, timeout: float = 300) -> dict:
    """Queue ``prompt`` (real file names: swapped for the tiny stand-ins here); its history entry on success."""
    entry = server.wait(server.queue(with_tiny_models(prompt)), timeout=timeout)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:4000]
    return entry


def require(object_info: dict, *class_types: str) -> None:
    """Skip where the running ComfyUI lacks a node of the family (HunyuanVideo 1.5 on 0.3.52)."""
    absent = [c for c in class_types if c not in object_info]
    if absent:
        pytest.skip(f"this ComfyUI has no {', '.join(absent)}")


# ---------------------------------------------------------------------------------------------------------------
# Each family's stock template path on its tiny models
# ---------------------------------------------------------------------------------------------------------------
def prompts(clip: list) -> dict:
    """The positive and negative text encodes on ``clip``."""
    return {
        "pos": node("CLIPTextEncode", text=PROMPT, clip=clip),
        "neg": node("CLIPTextEncode", text="blurry", clip=clip),
    }


def text_nodes(clip: list, encoder: str = "umt5_xxl_fp8_e4m3fn_scaled.safetensors", kind: str = "wan") -> dict:
    return {"clip": node("CLIPLoader", clip_name=encoder, type=kind, device="default"), **prompts(clip)}


#: HunyuanVideo 1.5's two text encoders, as its templates load them
HUNYUAN15_TEXT_ENCODERS = node(
    "DualCLIPLoader", clip_name1="qwen_2.5_vl_7b_fp8_scaled.safetensors",
    clip_name2="byt5_small_glyphxl_fp16.safetensors", type="hunyuan_video_15", device="default",
)  # fmt: skip


def sample_and_decode(model: list, latent: list, vae: list, positive=("pos", 0), negative=("neg", 0)) -> dict:
    return {
        "sample": node(
            "KSampler",
            model=model,
            seed=0,
            steps=1,
            cfg=1.0,
            sampler_name="euler",
            scheduler="simple",
            positive=list(positive),
            negative=list(negative),
            latent_image=latent,
            denoise=1.0,
        ),  # fmt: skip
        "decode": node("VAEDecode", samples=["sample", 0], vae=vae),
        "save": node("PreviewImage", images=["decode", 0]),
    }


def wan_t2v_graph(unet: str, lora: str | None = None) -> dict:
    g = {
        "unet": node("UNETLoader", unet_name=unet, weight_dtype="default"),
        "vae": node("VAELoader", vae_name="wan_2.1_vae.safetensors"),
        **text_nodes(["clip", 0]),
        "latent": node("EmptyHunyuanLatentVideo", width=32, height=32, length=5, batch_size=1),
    }
    model = ["unet", 0]
    if lora:
        g["lora"] = node("LoraLoaderModelOnly", model=model, lora_name=lora, strength_model=1.0)
        model = ["lora", 0]
    return {**g, **sample_and_decode(model, ["latent", 0], ["vae", 0])}


def family_i2v(class_type: str, **extra) -> dict:
    """The family's stock image-to-video conditioning node on the graph's text, VAE and guide image, 5 frames of
    32x32."""
    return node(
        class_type, positive=["pos", 0], negative=["neg", 0], vae=["vae", 0], width=32, height=32, length=5,
        batch_size=1, start_image=["image", 0], **extra,
    )  # fmt: skip


def wan_i2v_graph(unet: str, clip_vision: bool, lora: str | None = None) -> dict:
    g = {
        "unet": node("UNETLoader", unet_name=unet, weight_dtype="default"),
        "vae": node("VAELoader", vae_name="wan_2.1_vae.safetensors"),
        **text_nodes(["clip", 0]),
        "image": node("LoadImage", image=GUIDE),
        "i2v": family_i2v("WanImageToVideo"),
    }
    if clip_vision:
        g["cv"] = node("CLIPVisionLoader", clip_name="clip_vision_h.safetensors")
        g["cv_out"] = node("CLIPVisionEncode", clip_vision=["cv", 0], image=["image", 0], crop="none")
        g["i2v"]["inputs"]["clip_vision_output"] = ["cv_out", 0]
    model = ["unet", 0]
    if lora:
        g["lora"] = node("LoraLoaderModelOnly", model=model, lora_name=lora, strength_model=1.0)
        model = ["lora", 0]
    return {**g, **sample_and_decode(model, ["i2v", 2], ["vae", 0], ("i2v", 0), ("i2v", 1))}


def wan22_5b_graph() -> dict:
    return {
        "unet": node("UNETLoader", unet_name="wan2.2_ti2v_5B_fp16.safetensors", weight_dtype="default"),
        "vae": node("VAELoader", vae_name="wan2.2_vae.safetensors"),
        **text_nodes(["clip", 0]),
        "image": node("LoadImage", image=GUIDE),
        "latent": node(
            "Wan22ImageToVideoLatent",
            vae=["vae", 0],
            width=32,
            height=32,
            length=5,
            batch_size=1,
            start_image=["image", 0],
        ),  # fmt: skip
        **sample_and_decode(["unet", 0], ["latent", 0], ["vae", 0]),
    }


def hunyuan15_graph() -> dict:
    return {
        "unet": node("UNETLoader", unet_name="hunyuanvideo1.5_720p_i2v_fp16.safetensors", weight_dtype="default"),
        "vae": node("VAELoader", vae_name="hunyuanvideo15_vae_fp16.safetensors"),
        "clip": HUNYUAN15_TEXT_ENCODERS,
        **prompts(["clip", 0]),
        "image": node("LoadImage", image=GUIDE),
        "cv": node("CLIPVisionLoader", clip_name="sigclip_vision_patch14_384.safetensors"),
        "cv_out": node("CLIPVisionEncode", clip_vision=["cv", 0], image=["image", 0], crop="center"),
        "i2v": family_i2v("HunyuanVideo15ImageToVideo", clip_vision_output=["cv_out", 0]),
        **sample_and_decode(["unet", 0], ["i2v", 2], ["vae", 0], ("i2v", 0), ("i2v", 1)),
    }


def ltxv_graph() -> dict:
    return {
        "ckpt": node("CheckpointLoaderSimple", ckpt_name="ltx-video-2b-v0.9.5.safetensors"),
        **text_nodes(["clip", 0], "t5xxl_fp16.safetensors", "ltxv"),
        "image": node("LoadImage", image=GUIDE),
        "i2v": node(
            "LTXVImgToVideo",
            positive=["pos", 0],
            negative=["neg", 0],
            image=["image", 0],
            vae=["ckpt", 2],
            width=64,
            height=64,
            length=9,
            batch_size=1,
            strength=1.0,
        ),  # fmt: skip
        "cond": node("LTXVConditioning", positive=["i2v", 0], negative=["i2v", 1], frame_rate=25.0),
        **sample_and_decode(["ckpt", 0], ["i2v", 2], ["ckpt", 2], ("cond", 0), ("cond", 1)),
    }


def svd_graph(image: list) -> dict:
    return {
        "svd": node("ImageOnlyCheckpointLoader", ckpt_name="svd_xt.safetensors"),
        "cfg": node("VideoLinearCFGGuidance", model=["svd", 0], min_cfg=1.0),
        "cond": node(
            "SVD_img2vid_Conditioning",
            clip_vision=["svd", 1],
            init_image=image,
            vae=["svd", 2],
            width=32,
            height=32,
            video_frames=3,
            motion_bucket_id=127,
            fps=6,
            augmentation_level=0.0,
        ),  # fmt: skip
        **sample_and_decode(["cfg", 0], ["cond", 2], ["svd", 2], ("cond", 0), ("cond", 1)),
    }


def sdxl_to_svd_graph() -> dict:
    """The txt_to_image_to_video template's path: an SDXL image, then SVD-XT on it."""
    g = {
        "sdxl": node("CheckpointLoaderSimple", ckpt_name="sd_xl_base_1.0.safetensors"),
        "pos": node("CLIPTextEncode", text=PROMPT, clip=["sdxl", 1]),
        "neg": node("CLIPTextEncode", text="blurry", clip=["sdxl", 1]),
        "empty": node("EmptyLatentImage", width=32, height=32, batch_size=1),
        "image_sample": node(
            "KSampler",
            model=["sdxl", 0],
            seed=0,
            steps=1,
            cfg=1.0,
            sampler_name="euler",
            scheduler="simple",
            positive=["pos", 0],
            negative=["neg", 0],
            latent_image=["empty", 0],
            denoise=1.0,
        ),  # fmt: skip
        "image": node("VAEDecode", samples=["image_sample", 0], vae=["sdxl", 2]),
    }
    svd = svd_graph(["image", 0])
    svd["sample"]["inputs"].update(positive=["cond", 0], negative=["cond", 1])
    return {**g, **svd}


SMOKE = {
    "wan21_t2v": lambda: wan_t2v_graph("wan2.1_t2v_1.3B_fp16.safetensors"),
    "wan21_i2v": lambda: wan_i2v_graph("wan2.1_i2v_480p_14B_fp16.safetensors", clip_vision=True),
    "wan22_ti2v_5b": wan22_5b_graph,
    "wan22_14b_i2v_lora": lambda: wan_i2v_graph(
        "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        False,
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
    ),
    "wan22_14b_t2v_lora": lambda: wan_t2v_graph(
        "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
    ),
    "hunyuan_video15": hunyuan15_graph,
    "ltxv": ltxv_graph,
    "svd_xt": lambda: svd_graph(["image", 0]) | {"image": node("LoadImage", image=GUIDE)},
    "sdxl_to_svd": sdxl_to_svd_graph,
}


@pytest.mark.parametrize("family", SMOKE)
def test_tiny_models_run_through_the_stock_template_nodes(comfy_server, object_info, demo_inputs, family):
    graph = SMOKE[family]()
    require(object_info, *{n["class_type"] for n in graph.values()})
    entry = run(comfy_server, graph)
    assert entry["outputs"]["save"]["images"], entry["outputs"]


# ---------------------------------------------------------------------------------------------------------------
# Every adapter through the chunk sampler
# ---------------------------------------------------------------------------------------------------------------
CHUNKS, CANDIDATES, PREVIEW_STEPS, STEPS = 2, 2, 1, 2
OTHER_GUIDE = "cascadev_other_guide.png"


@pytest.fixture(scope="module")
def guides(demo_inputs) -> tuple[str, str]:
    """The demo's guide image and a different one (its colours inverted and mirrored) in the input folder."""
    from PIL import Image, ImageOps

    with Image.open(demo_inputs / GUIDE) as image:
        ImageOps.mirror(ImageOps.invert(image.convert("RGB"))).save(demo_inputs / OTHER_GUIDE)
    return GUIDE, OTHER_GUIDE


def chunk_graph(models: dict, adapter: dict, sampler_inputs: dict, guide: str, text: dict | None = None) -> dict:
    """``models`` (loader nodes; ``model`` and ``vae`` among them) + the adapter node ``i2v`` + the chunk sampler
    on guide ``guide``: m=2 candidates, k=1 preview step, s=2 steps, 2 chunks, no colour correction."""
    g = {
        **models,
        **(text or {}),
        "i2v": adapter,
        "guide": node("LoadImage", image=guide),
        "search": node(
            "CascadeVSearchOptions",
            mode="search",
            candidates=CANDIDATES,
            preview_steps=PREVIEW_STEPS,
            batch_size=0,
            color_correction=0.0,
            keep_guide_frame=False,
            score_frames=0,
            score_size=0,
        ),  # fmt: skip
        "sampler": node(
            "CascadeVChunkSampler",
            model=["model", 0],
            vae=["vae", 0],
            i2v=["i2v", 0],
            start_image=["guide", 0],
            chunks=CHUNKS,
            seed=3,
            steps=STEPS,
            cfg=1.0,
            sampler_name="euler",
            scheduler="simple",
            fps=8.0,
            search_options=["search", 0],
        ),  # fmt: skip
        "report": node("PreviewAny", source=["sampler", 2]),
        "frames": node("PreviewImage", images=["sampler", 0]),
    }
    if text:
        g["sampler"]["inputs"].update(positive=["pos", 0], negative=["neg", 0])
    g["sampler"]["inputs"].update(sampler_inputs)
    return g


def run_chunks(server, graph: dict) -> tuple[dict, list]:
    """Run a chunk-sampler graph; its report and its frames (uint8 arrays, as PreviewImage saved them)."""
    import numpy as np
    from PIL import Image

    entry = run(server, graph, timeout=600)
    report = json.loads(entry["outputs"]["report"]["text"][0])
    files = entry["outputs"]["frames"]["images"]
    frames = [np.asarray(Image.open(server.base / f["type"] / f["subfolder"] / f["filename"])) for f in files]
    return report, frames


def check_report(report: dict, frames: list, chunk_frames: int) -> None:
    """n(mk+s) evaluations, the best-scoring candidate chosen in every chunk, the chunks joined (the guide frame
    of each later chunk is the previous chunk's last frame: not repeated)."""
    assert report["mode"] == "search" and len(report["chunks"]) == CHUNKS
    assert report["evaluations"] == CHUNKS * (CANDIDATES * PREVIEW_STEPS + STEPS), report
    for chunk in report["chunks"]:
        scores = chunk["candidate_scores"]
        assert len(scores) == CANDIDATES and all(s is not None for s in scores), chunk
        assert chunk["chosen_index"] == max(range(CANDIDATES), key=lambda i: scores[i]), chunk
    joined = chunk_frames + (CHUNKS - 1) * (chunk_frames - 1)
    assert report["num_frames"] == len(frames) == joined


def check_guide_reaches_the_model(server, make_graph, guides, chunk_frames: int) -> None:
    """The adapter's run on two guides with the same seed (``chunk_frames``: the frames one chunk decodes to):
    both reports check out, and the scores and the frames the model generated in the first chunk (all but its
    first, which may hold the guide itself) differ."""
    import numpy as np

    (report_a, frames_a), (report_b, frames_b) = (run_chunks(server, make_graph(guide)) for guide in guides)
    for report, frames in ((report_a, frames_a), (report_b, frames_b)):
        check_report(report, frames, chunk_frames)
    assert report_a["chunks"][0]["candidate_seeds"] == report_b["chunks"][0]["candidate_seeds"]
    assert report_a["chunks"][0]["candidate_scores"] != report_b["chunks"][0]["candidate_scores"]
    generated = slice(1, chunk_frames)
    difference = np.abs(np.stack(frames_a[generated]).astype(int) - np.stack(frames_b[generated]).astype(int))
    assert difference.max() > 0, "the frames the model generated do not depend on the guide"


def unet(name: str) -> dict:
    return node("UNETLoader", unet_name=name, weight_dtype="default")


def test_wan21_i2v_adapter(comfy_server, object_info, guides):
    models = {
        "model": unet("wan2.1_i2v_480p_14B_fp16.safetensors"),
        "vae": node("VAELoader", vae_name="wan_2.1_vae.safetensors"),
        "cv": node("CLIPVisionLoader", clip_name="clip_vision_h.safetensors"),
    }
    adapter = node("CascadeVI2VWan", width=32, height=32, length=5, clip_vision=["cv", 0])
    make = lambda guide: chunk_graph(models, adapter, {}, guide, text_nodes(["clip", 0]))  # noqa: E731
    check_guide_reaches_the_model(comfy_server, make, guides, 5)


def test_wan22_ti2v_5b_adapter(comfy_server, object_info, guides):
    models = {
        "model": unet("wan2.2_ti2v_5B_fp16.safetensors"),
        "vae": node("VAELoader", vae_name="wan2.2_vae.safetensors"),
    }
    adapter = node("CascadeVI2VWan22", width=32, height=32, length=5)
    make = lambda guide: chunk_graph(models, adapter, {}, guide, text_nodes(["clip", 0]))  # noqa: E731
    check_guide_reaches_the_model(comfy_server, make, guides, 5)


def test_wan22_14b_i2v_adapter_with_both_experts(comfy_server, object_info, guides):
    models = {
        "model": unet("wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"),
        "low": unet("wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"),
        "vae": node("VAELoader", vae_name="wan_2.1_vae.safetensors"),
    }
    adapter = node("CascadeVI2VWan", width=32, height=32, length=5)
    experts = {"model_low_noise": ["low", 0], "switch_step": 1}
    make = lambda guide: chunk_graph(models, adapter, experts, guide)  # noqa: E731
    check_guide_reaches_the_model(comfy_server, make, guides, 5)


def test_hunyuan_video15_adapter(comfy_server, object_info, guides):
    require(object_info, "HunyuanVideo15ImageToVideo")
    models = {
        "model": unet("hunyuanvideo1.5_720p_i2v_fp16.safetensors"),
        "vae": node("VAELoader", vae_name="hunyuanvideo15_vae_fp16.safetensors"),
        "cv": node("CLIPVisionLoader", clip_name="sigclip_vision_patch14_384.safetensors"),
        "clip": HUNYUAN15_TEXT_ENCODERS,
    }
    text = prompts(["clip", 0])
    adapter = node("CascadeVI2VHunyuanVideo15", width=32, height=32, length=5, clip_vision=["cv", 0])
    make = lambda guide: chunk_graph(models, adapter, {}, guide, text)  # noqa: E731
    # ComfyUI's HunyuanVideo 1.5 VAE decodes 4 frames per latent frame (5 frames -> 8); the adapter drops the 3
    # extra copies of the guide in the first 4, so a chunk has its length and a join does not freeze
    check_guide_reaches_the_model(comfy_server, make, guides, 5)


def test_ltxv_adapter_with_its_scheduler_and_a_sampler_input(comfy_server, object_info, guides):
    models = {
        "model": node("CheckpointLoaderSimple", ckpt_name="ltx-video-2b-v0.9.5.safetensors"),
        "sigmas": node("LTXVScheduler", steps=STEPS, max_shift=2.05, base_shift=0.95, stretch=True, terminal=0.1),
        "ksampler": node("KSamplerSelect", sampler_name="euler"),
    }
    models["vae"] = models["model"]  # the checkpoint's VAE is its output 2
    adapter = node("CascadeVI2VLTXV", width=64, height=64, length=9, strength=1.0)
    schedule = {"sigmas": ["sigmas", 0], "sampler": ["ksampler", 0], "steps": 50}  # the schedule's steps count
    text = text_nodes(["clip", 0], "t5xxl_fp16.safetensors", "ltxv")

    def make(guide):
        g = chunk_graph(models, adapter, schedule, guide, text)
        g["sampler"]["inputs"]["vae"] = ["model", 2]
        return g

    check_guide_reaches_the_model(comfy_server, make, guides, 9)


def test_svd_adapter(comfy_server, object_info, guides):
    models = {
        "svd": node("ImageOnlyCheckpointLoader", ckpt_name="svd_xt.safetensors"),
        "model": node("VideoLinearCFGGuidance", model=["svd", 0], min_cfg=1.0),
    }
    adapter = node(
        "CascadeVI2VSVD", clip_vision=["svd", 1], width=32, height=32, video_frames=3, motion_bucket_id=127, fps=6,
        augmentation_level=0.0,
    )  # fmt: skip

    def make(guide):
        g = chunk_graph(models | {"vae": models["svd"]}, adapter, {"vae": ["svd", 2]}, guide)
        del g["vae"]
        return g

    check_guide_reaches_the_model(comfy_server, make, guides, 3)
