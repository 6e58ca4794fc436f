#!/usr/bin/env python3
"""Write the shipped workflows, UI format (``workflows/*.json``) and API format (``workflows/api/*.json``).

    .venv/bin/python scripts/build_workflows.py

Each graph is defined once below; widget order, output names and link types come from a real ComfyUI's
``/object_info`` (a server with the pack is started for it), so the canvas and the API versions always agree with
the nodes. Loader nodes carry the frontend's ``models`` metadata (file, URL, folder) for its "Missing Models"
dialog, and every workflow has a note listing the model files it expects.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfyui_env  # noqa: E402

REPO = comfyui_env.REPO
WORKFLOWS = REPO / "workflows"

HF = "https://huggingface.co"
WAN22 = f"{HF}/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files"
MODELS = {
    "s1024.effn-f32.pth": (f"{HF}/ByteDance/CascadeV/resolve/main/s1024.effn-f32.pth", "cascadev"),
    "effnet_encoder.safetensors": (f"{HF}/stabilityai/StableWurst/resolve/main/effnet_encoder.safetensors", "cascadev"),
    "vae-ft-mse-840000-ema-pruned.safetensors": (
        f"{HF}/stabilityai/sd-vae-ft-mse-original/resolve/main/vae-ft-mse-840000-ema-pruned.safetensors",
        "vae",
    ),
    "wan2.1_t2v_1.3B_fp16.safetensors": (
        f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/diffusion_models/"
        "wan2.1_t2v_1.3B_fp16.safetensors",
        "diffusion_models",
    ),
    "wan2.1_i2v_480p_14B_fp16.safetensors": (
        f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/diffusion_models/"
        "wan2.1_i2v_480p_14B_fp16.safetensors",
        "diffusion_models",
    ),
    "wan_2.1_vae.safetensors": (
        f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/vae/wan_2.1_vae.safetensors",
        "vae",
    ),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": (
        f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/text_encoders/"
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "text_encoders",
    ),
    "clip_vision_h.safetensors": (
        f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/clip_vision/clip_vision_h.safetensors",
        "clip_vision",
    ),
    "wan2.2_ti2v_5B_fp16.safetensors": (
        f"{WAN22}/diffusion_models/wan2.2_ti2v_5B_fp16.safetensors",
        "diffusion_models",
    ),
    "wan2.2_vae.safetensors": (f"{WAN22}/vae/wan2.2_vae.safetensors", "vae"),
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors": (
        f"{WAN22}/diffusion_models/wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "diffusion_models",
    ),
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": (
        f"{WAN22}/diffusion_models/wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        "diffusion_models",
    ),
    "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": (
        f"{WAN22}/diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
        "diffusion_models",
    ),
    "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": (
        f"{WAN22}/diffusion_models/wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
        "diffusion_models",
    ),
    "svd_xt.safetensors": (
        f"{HF}/stabilityai/stable-video-diffusion-img2vid-xt/resolve/main/svd_xt.safetensors",
        "checkpoints",
    ),
}


@dataclass
class N:
    """A node of a workflow: widget values by input name, links as ``input -> (node id, output slot)``."""

    id: int
    type: str
    title: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)


def cascade_nodes(frames_source: tuple[str, tuple[int, int]], x0: int, y0: int = 0, fps: float = 0.0) -> list[N]:
    """Effnet encode -> refine -> sliced decode -> save; ``frames_source`` is (Encode input, (node, slot)): IMAGE
    frames on ``images`` or a VIDEO on ``video`` (then the decode keeps its frame rate: ``fps`` 0)."""
    name, source = frames_source
    return [
        N(20, "CascadeVEffnetLoader", "Load CascadeV Effnet Encoder", (x0, y0),
          {"effnet_name": "effnet_encoder.safetensors", "weight_dtype": "auto"}),
        N(21, "CascadeVModelLoader", "Load CascadeV Model", (x0, y0 + 140),
          {"dit_name": "s1024.effn-f32.pth", "weight_dtype": "auto", "attention_layout": "official"}),
        N(22, "CascadeVEncode", "CascadeV Encode Frames", (x0 + 360, y0), {"resize": "auto", "resize_value": 0.0},
          {"effnet": (20, 0), name: source, "cascadev_model": (21, 0)}),
        N(23, "CascadeVRefineOptions", "CascadeV Refine Options", (x0 + 360, y0 + 200),
          {"window": 0, "window_stride": 0, "window_blend": "crossfade", "tile": 0, "tile_overlap": -1,
           "tile_blend": "feather", "max_batch": 1, "pad": "none", "memory_budget_gb": 0.0}),
        N(24, "CascadeVRefine", "CascadeV Refine", (x0 + 720, y0),
          {"seed": 42, "steps": 8, "sampler": "euler_a"},
          {"cascadev_model": (21, 0), "conditioning": (22, 0), "options": (23, 0)}),
        N(25, "VAELoader", "Load VAE (SD / SVD latent space)", (x0 + 720, y0 + 300),
          {"vae_name": "vae-ft-mse-840000-ema-pruned.safetensors"}),
        N(26, "CascadeVDecode", "CascadeV Decode", (x0 + 1080, y0),
          {"frames_per_slice": 4, "tile_size": 0, "tile_overlap": 64, "fps": fps}, {"latent": (24, 0), "vae": (25, 0)}),
        N(27, "SaveVideo", "Save Video", (x0 + 1440, y0),
          {"filename_prefix": "cascadev/refined", "format": "auto", "codec": "auto"}, {"video": (26, 1)}),
    ]  # fmt: skip


def refine_video() -> list[N]:
    nodes = [N(1, "LoadVideo", "Load Video (any base model's output)", (0, 0), {"file": "cascadev_demo_input.mp4"})]
    return nodes + cascade_nodes(("video", (1, 0)), 360)


def wan_t2v_refine() -> list[N]:
    neg = "blurry, low quality, static, distorted, watermark"
    nodes = [
        N(1, "UNETLoader", "Load Diffusion Model (Wan 2.1 T2V 1.3B)", (0, 0),
          {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors", "weight_dtype": "default"}),
        N(2, "CLIPLoader", "Load CLIP (umt5)", (0, 140),
          {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}),
        N(3, "CLIPTextEncode", "Positive Prompt", (360, 0),
          {"text": "A red fox trotting through fresh snow in a sunlit birch forest, cinematic"}, {"clip": (2, 0)}),
        N(4, "CLIPTextEncode", "Negative Prompt", (360, 220), {"text": neg}, {"clip": (2, 0)}),
        N(5, "EmptyHunyuanLatentVideo", "Empty Latent Video", (360, 440),
          {"width": 832, "height": 480, "length": 33, "batch_size": 1}),
        N(6, "ModelSamplingSD3", "Model Sampling (shift)", (360, -140), {"shift": 8.0}, {"model": (1, 0)}),
        N(7, "KSampler", "KSampler (base model)", (720, 0),
          {"seed": 1, "steps": 30, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0},
          {"model": (6, 0), "positive": (3, 0), "negative": (4, 0), "latent_image": (5, 0)}),
        N(8, "VAELoader", "Load VAE (Wan 2.1)", (720, 320), {"vae_name": "wan_2.1_vae.safetensors"}),
        N(9, "VAEDecode", "VAE Decode (base frames)", (1080, 0), {}, {"samples": (7, 0), "vae": (8, 0)}),
    ]  # fmt: skip
    return nodes + cascade_nodes(("images", (9, 0)), 1440, fps=16.0)


def wan_i2v_long() -> list[N]:
    neg = "blurry, low quality, static, distorted, watermark"
    return [
        N(1, "UNETLoader", "Load Diffusion Model (Wan 2.1 I2V 480p)", (0, 0),
          {"unet_name": "wan2.1_i2v_480p_14B_fp16.safetensors", "weight_dtype": "default"}),
        N(2, "CLIPLoader", "Load CLIP (umt5)", (0, 140),
          {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}),
        N(3, "CLIPTextEncode", "Positive Prompt", (360, 0),
          {"text": "The camera slowly dollies forward along a coastal cliff path at golden hour"}, {"clip": (2, 0)}),
        N(4, "CLIPTextEncode", "Negative Prompt", (360, 220), {"text": neg}, {"clip": (2, 0)}),
        N(5, "CLIPVisionLoader", "Load CLIP Vision", (0, 300), {"clip_name": "clip_vision_h.safetensors"}),
        N(6, "VAELoader", "Load VAE (Wan 2.1)", (0, 420), {"vae_name": "wan_2.1_vae.safetensors"}),
        N(7, "LoadImage", "Start Image", (0, 540), {"image": "cascadev_demo_guide.png"}),
        N(8, "CascadeVI2VWan", "CascadeV I2V Adapter (Wan 2.1 / 2.2 14B)", (360, 440),
          {"width": 832, "height": 480, "length": 33}, {"clip_vision": (5, 0)}),
        N(9, "CascadeVSearchOptions", "CascadeV Noise Search Options", (360, 640),
          {"mode": "search", "candidates": 4, "preview_steps": 4, "batch_size": 0, "color_correction": 0.5,
           "keep_guide_frame": False, "score_frames": 0, "score_size": 224}),
        N(10, "CascadeVChunkSampler", "CascadeV Chunk Sampler (k-step noise search)", (720, 0),
          {"chunks": 4, "seed": 7, "steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple", "fps": 16.0,
           "switch_step": 0},
          {"model": (1, 0), "vae": (6, 0), "i2v": (8, 0), "start_image": (7, 0), "positive": (3, 0),
           "negative": (4, 0), "search_options": (9, 0), "clip_vision": (5, 0)}),
        N(11, "SaveVideo", "Save Video", (1080, 0),
          {"filename_prefix": "cascadev/long_video", "format": "auto", "codec": "auto"}, {"video": (10, 1)}),
        N(12, "PreviewAny", "Search report", (1080, 300), {}, {"source": (10, 2)}),
    ]  # fmt: skip


def svd_long() -> list[N]:
    return [
        N(1, "ImageOnlyCheckpointLoader", "Load SVD-XT", (0, 0), {"ckpt_name": "svd_xt.safetensors"}),
        N(2, "LoadImage", "Start Image", (0, 200), {"image": "cascadev_demo_guide.png"}),
        N(3, "VideoLinearCFGGuidance", "Video Linear CFG Guidance", (360, 0), {"min_cfg": 1.0}, {"model": (1, 0)}),
        N(4, "CascadeVI2VSVD", "CascadeV I2V Adapter (SVD)", (360, 200),
          {"width": 1024, "height": 576, "video_frames": 25, "motion_bucket_id": 127, "fps": 6,
           "augmentation_level": 0.0}, {"clip_vision": (1, 1)}),
        N(5, "CascadeVSearchOptions", "CascadeV Noise Search Options", (360, 500),
          {"mode": "search", "candidates": 4, "preview_steps": 4, "batch_size": 1, "color_correction": 0.5,
           "keep_guide_frame": False, "score_frames": 0, "score_size": 224}),
        N(6, "CascadeVChunkSampler", "CascadeV Chunk Sampler (k-step noise search)", (720, 0),
          {"chunks": 4, "seed": 7, "steps": 20, "cfg": 2.5, "sampler_name": "euler", "scheduler": "karras", "fps": 6.0,
           "switch_step": 0},
          {"model": (3, 0), "vae": (1, 2), "i2v": (4, 0), "start_image": (2, 0), "search_options": (5, 0),
           "clip_vision": (1, 1)}),
        N(7, "SaveVideo", "Save Video", (1080, 0),
          {"filename_prefix": "cascadev/long_video_svd", "format": "auto", "codec": "auto"}, {"video": (6, 1)}),
        N(8, "PreviewAny", "Search report", (1080, 300), {}, {"source": (6, 2)}),
    ]  # fmt: skip


NEGATIVE = "blurry, low quality, static, distorted, watermark"


def wan_text(x: int, y: int, prompt: str) -> list[N]:
    """umt5 text encoder and the two prompts (nodes 2, 3, 4)."""
    return [
        N(2, "CLIPLoader", "Load CLIP (umt5)", (x, y + 140),
          {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}),
        N(3, "CLIPTextEncode", "Positive Prompt", (x + 360, y), {"text": prompt}, {"clip": (2, 0)}),
        N(4, "CLIPTextEncode", "Negative Prompt", (x + 360, y + 220), {"text": NEGATIVE}, {"clip": (2, 0)}),
    ]  # fmt: skip


def long_video_tail(sampler_id: int, x: int, prefix: str) -> list[N]:
    """Save Video and the search report after the chunk sampler."""
    return [
        N(sampler_id + 1, "SaveVideo", "Save Video", (x, 0),
          {"filename_prefix": f"cascadev/{prefix}", "format": "auto", "codec": "auto"}, {"video": (sampler_id, 1)}),
        N(sampler_id + 2, "PreviewAny", "Search report", (x, 300), {}, {"source": (sampler_id, 2)}),
    ]  # fmt: skip


def search_options(node_id: int, pos: tuple[int, int], batch_size: int = 0) -> N:
    return N(node_id, "CascadeVSearchOptions", "CascadeV Noise Search Options", pos,
             {"mode": "halving", "candidates": 4, "preview_steps": 4, "batch_size": batch_size,
              "color_correction": 0.5, "keep_guide_frame": False, "score_frames": 0, "score_size": 224})  # fmt: skip


def wan22_ti2v_long() -> list[N]:
    """Wan 2.2 TI2V 5B (its template's model, VAE, shift 8, 20 uni_pc steps, cfg 5, 24 fps) chunk by chunk."""
    return [
        N(1, "UNETLoader", "Load Diffusion Model (Wan 2.2 TI2V 5B)", (0, 0),
          {"unet_name": "wan2.2_ti2v_5B_fp16.safetensors", "weight_dtype": "default"}),
        *wan_text(0, 0, "The camera slowly dollies forward along a coastal cliff path at golden hour"),
        N(5, "ModelSamplingSD3", "Model Sampling (shift)", (360, -140), {"shift": 8.0}, {"model": (1, 0)}),
        N(6, "VAELoader", "Load VAE (Wan 2.2)", (0, 420), {"vae_name": "wan2.2_vae.safetensors"}),
        N(7, "LoadImage", "Start Image", (0, 540), {"image": "cascadev_demo_guide.png"}),
        N(8, "CascadeVI2VWan22", "CascadeV I2V Adapter (Wan 2.2 TI2V 5B)", (360, 440),
          {"width": 1280, "height": 704, "length": 121}),
        search_options(9, (360, 640)),
        N(10, "CascadeVChunkSampler", "CascadeV Chunk Sampler (k-step noise search)", (720, 0),
          {"chunks": 3, "seed": 7, "steps": 20, "cfg": 5.0, "sampler_name": "uni_pc", "scheduler": "simple",
           "fps": 24.0, "switch_step": 0},
          {"model": (5, 0), "vae": (6, 0), "i2v": (8, 0), "start_image": (7, 0), "positive": (3, 0),
           "negative": (4, 0), "search_options": (9, 0)}),
        *long_video_tail(10, 1080, "long_video_wan22_5b"),
    ]  # fmt: skip


def wan22_14b_long() -> list[N]:
    """Wan 2.2 14B I2V, high-noise expert for the first half of every schedule, low-noise expert for the rest (its
    template's 20-step settings: euler, simple, cfg 3.5, shift 8, switch at step 10)."""
    return [
        N(1, "UNETLoader", "Load Diffusion Model (Wan 2.2 14B I2V, high noise)", (0, 0),
          {"unet_name": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "weight_dtype": "default"}),
        *wan_text(0, 0, "The camera slowly dollies forward along a coastal cliff path at golden hour"),
        N(5, "ModelSamplingSD3", "Model Sampling (shift, high)", (360, -280), {"shift": 8.0}, {"model": (1, 0)}),
        N(6, "VAELoader", "Load VAE (Wan 2.1)", (0, 420), {"vae_name": "wan_2.1_vae.safetensors"}),
        N(7, "LoadImage", "Start Image", (0, 540), {"image": "cascadev_demo_guide.png"}),
        N(8, "CascadeVI2VWan", "CascadeV I2V Adapter (Wan 2.1 / 2.2 14B)", (360, 440),
          {"width": 640, "height": 640, "length": 81}),
        search_options(9, (360, 640)),
        N(10, "CascadeVChunkSampler", "CascadeV Chunk Sampler (k-step noise search)", (720, 0),
          {"chunks": 3, "seed": 7, "steps": 20, "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple",
           "fps": 16.0, "switch_step": 10},
          {"model": (5, 0), "vae": (6, 0), "i2v": (8, 0), "start_image": (7, 0), "positive": (3, 0),
           "negative": (4, 0), "search_options": (9, 0), "model_low_noise": (14, 0)}),
        *long_video_tail(10, 1080, "long_video_wan22_14b"),
        N(13, "UNETLoader", "Load Diffusion Model (Wan 2.2 14B I2V, low noise)", (0, -300),
          {"unet_name": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", "weight_dtype": "default"}),
        N(14, "ModelSamplingSD3", "Model Sampling (shift, low)", (360, -420), {"shift": 8.0}, {"model": (13, 0)}),
    ]  # fmt: skip


def wan22_t2v_refine() -> list[N]:
    """Wan 2.2 14B T2V as its template runs it (two KSamplerAdvanced, high-noise expert steps 0-10 of 20, low-noise
    10-20, cfg 3.5, shift 8), then the cascade."""
    nodes = [
        N(1, "UNETLoader", "Load Diffusion Model (Wan 2.2 14B T2V, high noise)", (0, 0),
          {"unet_name": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "weight_dtype": "default"}),
        *wan_text(0, 0, "A red fox trotting through fresh snow in a sunlit birch forest, cinematic"),
        N(5, "EmptyHunyuanLatentVideo", "Empty Latent Video", (360, 440),
          {"width": 640, "height": 640, "length": 81, "batch_size": 1}),
        N(6, "ModelSamplingSD3", "Model Sampling (shift, high)", (360, -140), {"shift": 8.0}, {"model": (1, 0)}),
        N(7, "KSamplerAdvanced", "KSampler (high noise, steps 0-10)", (720, 0),
          {"add_noise": "enable", "noise_seed": 1, "steps": 20, "cfg": 3.5, "sampler_name": "euler",
           "scheduler": "simple", "start_at_step": 0, "end_at_step": 10, "return_with_leftover_noise": "enable"},
          {"model": (6, 0), "positive": (3, 0), "negative": (4, 0), "latent_image": (5, 0)}),
        N(8, "VAELoader", "Load VAE (Wan 2.1)", (1080, 320), {"vae_name": "wan_2.1_vae.safetensors"}),
        N(9, "VAEDecode", "VAE Decode (base frames)", (1440, 0), {}, {"samples": (12, 0), "vae": (8, 0)}),
        N(10, "UNETLoader", "Load Diffusion Model (Wan 2.2 14B T2V, low noise)", (0, -300),
          {"unet_name": "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "weight_dtype": "default"}),
        N(11, "ModelSamplingSD3", "Model Sampling (shift, low)", (360, -300), {"shift": 8.0}, {"model": (10, 0)}),
        N(12, "KSamplerAdvanced", "KSampler (low noise, steps 10-20)", (1080, 0),
          {"add_noise": "disable", "noise_seed": 1, "steps": 20, "cfg": 3.5, "sampler_name": "euler",
           "scheduler": "simple", "start_at_step": 10, "end_at_step": 10000, "return_with_leftover_noise": "disable"},
          {"model": (11, 0), "positive": (3, 0), "negative": (4, 0), "latent_image": (7, 0)}),
    ]  # fmt: skip
    return nodes + cascade_nodes(("images", (9, 0)), 1800, fps=16.0)


WORKFLOW_SPECS = {
    "cascadev_refine_video": ("Refine an existing video (LoadVideo -> CascadeV -> SaveVideo)", refine_video),
    "cascadev_wan_t2v_refine": ("Wan 2.1 text-to-video -> CascadeV refine -> sliced VAE decode", wan_t2v_refine),
    "cascadev_long_video_wan_i2v": ("Long image-to-video with Wan 2.1 I2V and k-step noise search", wan_i2v_long),
    "cascadev_long_video_svd": ("Long image-to-video with SVD-XT and k-step noise search", svd_long),
    "cascadev_wan22_t2v_refine": ("Wan 2.2 14B text-to-video (two experts) -> CascadeV refine", wan22_t2v_refine),
    "cascadev_long_video_wan22_ti2v_5b": ("Long image-to-video with Wan 2.2 TI2V 5B and noise search", wan22_ti2v_long),
    "cascadev_long_video_wan22_14b_i2v": (
        "Long image-to-video with Wan 2.2 14B I2V (two experts) and noise search",
        wan22_14b_long,
    ),
}


# ----------------------------------------------------------------------------------------------------------------
def widget_names(info: dict) -> list[tuple[str, bool]]:
    """(input name, has control_after_generate) for every widget input, in the frontend's order."""
    names = []
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            spec = info["input"][section][name]
            kind, opts = spec[0], spec[1] if len(spec) > 1 else {}
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                names.append((name, bool(opts.get("control_after_generate"))))
    return names


def api_format(nodes: list[N]) -> dict:
    prompt = {}
    for n in nodes:
        inputs = dict(n.widgets)
        inputs.update({k: [str(src), slot] for k, (src, slot) in n.links.items()})
        prompt[str(n.id)] = {"class_type": n.type, "inputs": inputs, "_meta": {"title": n.title}}
    return prompt


def ui_format(nodes: list[N], object_info: dict, description: str) -> dict:
    by_id = {n.id: n for n in nodes}
    links, link_id = [], 0
    out_links: dict[tuple[int, int], list[int]] = {}
    in_links: dict[tuple[int, str], int] = {}
    for n in nodes:
        for name, (src, slot) in n.links.items():
            link_id += 1
            kind = object_info[by_id[src].type]["output"][slot]
            links.append([link_id, src, slot, n.id, None, kind])
            out_links.setdefault((src, slot), []).append(link_id)
            in_links[(n.id, name)] = link_id
    ui_nodes = []
    for order, n in enumerate(nodes):
        info = object_info[n.type]
        widgets = widget_names(info)
        inputs = []
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                spec = info["input"][section][name]
                is_widget = any(w == name for w, _ in widgets)
                if is_widget and (n.id, name) not in in_links:
                    continue
                entry = {"name": name, "type": "COMBO" if isinstance(spec[0], list) else spec[0],
                         "link": in_links.get((n.id, name))}  # fmt: skip
                if is_widget:
                    entry["widget"] = {"name": name}
                inputs.append(entry)
        for link in links:
            if link[3] == n.id:
                link[4] = next(i for i, e in enumerate(inputs) if in_links.get((n.id, e["name"])) == link[0])
        outputs = [
            {"name": name, "type": kind, "links": out_links.get((n.id, slot), []), "slot_index": slot}
            for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"]))
        ]
        values = []
        for name, control in widgets:
            if (n.id, name) in in_links:
                continue
            if name not in n.widgets:
                raise KeyError(f"{n.type} #{n.id}: no value for widget '{name}'")
            values.append(n.widgets[name])
            if control:
                values.append("fixed")
        if n.type in ("LoadImage", "LoadVideo"):
            values.append("image")  # the upload button widget
        properties = {"Node name for S&R": n.type}
        models = [
            {"name": v, "url": MODELS[v][0], "directory": MODELS[v][1]}
            for v in n.widgets.values()
            if isinstance(v, str) and v in MODELS
        ]
        if models:
            properties["models"] = models
        ui_nodes.append({
            "id": n.id, "type": n.type, "title": n.title, "pos": list(n.pos), "size": [320, 120], "flags": {},
            "order": order, "mode": 0, "inputs": inputs, "outputs": outputs, "properties": properties,
            "widgets_values": values,
        })  # fmt: skip
    note_id = max(by_id) + 1
    files = sorted({v for n in nodes for v in n.widgets.values() if isinstance(v, str) and v in MODELS})
    note = f"## {description}\n\nModel files this workflow expects:\n\n" + "\n".join(
        f"- `{f}` in `models/{MODELS[f][1]}/` ([download]({MODELS[f][0]}))" for f in files
    )
    ui_nodes.append({
        "id": note_id, "type": "MarkdownNote", "title": "Models", "pos": [0, -420], "size": [520, 300],
        "flags": {}, "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
        "widgets_values": [note], "color": "#432", "bgcolor": "#653",
    })  # fmt: skip
    return {
        "last_node_id": note_id, "last_link_id": link_id, "nodes": ui_nodes, "links": links, "groups": [],
        "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [40, 460]}}, "version": 0.4,
    }  # fmt: skip


def main() -> int:
    py, comfy = comfyui_env.setup()
    with tempfile.TemporaryDirectory() as tmp, comfyui_env.ComfyServer(py, comfy, Path(tmp)) as server:
        object_info = server.get("/object_info")
    (WORKFLOWS / "api").mkdir(parents=True, exist_ok=True)
    for name, (description, build) in WORKFLOW_SPECS.items():
        nodes = build()
        (WORKFLOWS / "api" / f"{name}.json").write_text(json.dumps(api_format(nodes), indent=1) + "\n")
        (WORKFLOWS / f"{name}.json").write_text(json.dumps(ui_format(nodes, object_info, description), indent=1) + "\n")
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
