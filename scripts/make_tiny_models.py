#!/usr/bin/env python3
"""Write tiny random weights of the real architectures, so the demo and the tests run with no download.

    python scripts/make_tiny_models.py MODELS_DIR

writes, under a ComfyUI ``models/`` folder:

* ``cascadev/tiny_cascadev_dit.safetensors``: a CascadeV DiT with the official structure and key names but
  hidden 72, depth 4, 4 heads, tile 16 (its config is stored in the file's metadata, as the converter does);
* ``cascadev/tiny_effnet_encoder.safetensors``: the full-size EfficientNetV2-S effnet encoder (20 M values,
  random, float16), the architecture of the released ``effnet_encoder.safetensors``;
* ``vae/tiny_taesd.safetensors``: a TAESD (SD-latent tiny autoencoder) with random weights;
* one tiny model per family of the official ComfyUI video templates (``COMFY_FILES``), built by ComfyUI's own
  classes in a subprocess (``tests/comfyui/tiny_loaders/tiny_models.py`` run inside the ComfyUI tree of
  ``COMFYUI_PATH`` or the cache), so the key names and layouts are ComfyUI's: Wan 2.1 T2V and I2V, Wan 2.2 TI2V 5B
  (48-channel), Wan 2.2 14B I2V and T2V high- and low-noise experts (different seeds) and a lightx2v-style LoRA,
  their VAEs (Wan 2.1, Wan 2.2), HunyuanVideo 1.5 (DiT, SR DiT, VAE; only on a ComfyUI that has it), an LTXV
  checkpoint (transformer + VAE, tiny config in its metadata as the released files carry), an SVD-XT checkpoint
  (UNet, temporal VAE, CLIP vision), an SDXL checkpoint (the txt->img->video template's), CLIP vision H and SigLIP
  384 (two layers, the released output widths), and tiny text encoders (umt5-xxl, t5-xxl, Qwen 2.5 VL, ByT5).

ComfyUI's stock loaders take the diffusion models, the LoRA, TAESD and the LTXV checkpoint as they are; the rest
need the test pack ``tests/comfyui/tiny_loaders`` (its detection hard-codes the released widths there), which
``with_tiny_models`` switches the graph's loaders to. Each file is a few MB (the largest, the SVD checkpoint and
CLIP vision H, about 30 MB); all of them are written in about 20 s on 2 CPU cores, and only missing ones.

Real weights go in the same folders: ``models/cascadev/s1024.effn-f32.pth`` (or its ``.safetensors``
conversion), ``models/cascadev/effnet_encoder.safetensors`` and a 4-channel SD VAE (the SVD temporal VAE of the
official pipeline) in ``models/vae/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cascadev_core.checkpoint import METADATA_CONFIG_KEY  # noqa: E402
from cascadev_core.config import DiTConfig  # noqa: E402
from cascadev_core.dit import CascadeDiT  # noqa: E402
from cascadev_core.effnet import EfficientNetEncoder  # noqa: E402

TINY_DIT = "tiny_cascadev_dit.safetensors"
TINY_EFFNET = "tiny_effnet_encoder.safetensors"
TINY_VAE = "tiny_taesd.safetensors"
TINY_WAN = "tiny_wan21_i2v.safetensors"
TINY_WAN_VAE = "tiny_wan21_vae.safetensors"

#: the test-only node pack whose loaders build what ComfyUI's stock loaders cannot build at tiny widths
TINY_LOADERS_PACK = REPO / "tests" / "comfyui" / "tiny_loaders"


@dataclass(frozen=True)
class TinyFile:
    """One tiny file built by ComfyUI's own classes: its ``models/`` folder, file name, what to build (a key of
    ``tiny_models.WRITERS``), its seed, and whether the running ComfyUI must have a class for it."""

    folder: str
    name: str
    kind: str
    seed: int
    needs: str | None = None


#: key -> tiny file (the seeds differ, so two experts of one architecture are different models)
COMFY_FILES = {
    "vae": TinyFile("vae", TINY_VAE, "TAESD", 0),
    "wan": TinyFile("diffusion_models", TINY_WAN, "WAN21_I2V", 1),
    "wan_vae": TinyFile("vae", TINY_WAN_VAE, "WAN21_VAE", 2),
    "wan_t2v": TinyFile("diffusion_models", "tiny_wan21_t2v.safetensors", "WAN21_T2V", 3),
    "wan22_5b": TinyFile("diffusion_models", "tiny_wan22_ti2v_5b.safetensors", "WAN22_TI2V_5B", 4),
    "wan22_vae": TinyFile("vae", "tiny_wan22_vae.safetensors", "WAN22_VAE", 5),
    "wan22_i2v_high": TinyFile("diffusion_models", "tiny_wan22_i2v_high_noise.safetensors", "WAN22_I2V_14B", 6),
    "wan22_i2v_low": TinyFile("diffusion_models", "tiny_wan22_i2v_low_noise.safetensors", "WAN22_I2V_14B", 7),
    "wan22_t2v_high": TinyFile("diffusion_models", "tiny_wan22_t2v_high_noise.safetensors", "WAN22_T2V_14B", 8),
    "wan22_t2v_low": TinyFile("diffusion_models", "tiny_wan22_t2v_low_noise.safetensors", "WAN22_T2V_14B", 9),
    "wan22_lora": TinyFile("loras", "tiny_wan22_lightx2v_lora.safetensors", "WAN22_LORA", 10),
    "umt5": TinyFile("text_encoders", "tiny_umt5_xxl.safetensors", "UMT5_XXL", 11),
    "clip_vision_h": TinyFile("clip_vision", "tiny_clip_vision_h.safetensors", "CLIP_VISION_H", 12),
    "hunyuan15": TinyFile(
        "diffusion_models", "tiny_hunyuan_video15.safetensors", "HUNYUAN15", 13, needs="HunyuanVideo15"
    ),
    "hunyuan15_sr": TinyFile(
        "diffusion_models", "tiny_hunyuan_video15_sr.safetensors", "HUNYUAN15_SR", 14, needs="HunyuanVideo15"
    ),
    "hunyuan15_vae": TinyFile(
        "vae", "tiny_hunyuan_video15_vae.safetensors", "HUNYUAN15_VAE", 15, needs="HunyuanVideo15"
    ),
    "qwen25": TinyFile("text_encoders", "tiny_qwen25_7b.safetensors", "QWEN25_7B", 16),
    "byt5": TinyFile("text_encoders", "tiny_byt5_small.safetensors", "BYT5_SMALL", 17),
    "siglip": TinyFile("clip_vision", "tiny_siglip_384.safetensors", "SIGLIP_384", 18),
    "ltxv": TinyFile("checkpoints", "tiny_ltxv.safetensors", "LTXV", 19),
    "t5xxl": TinyFile("text_encoders", "tiny_t5xxl.safetensors", "T5XXL", 20),
    "svd_xt": TinyFile("checkpoints", "tiny_svd_xt.safetensors", "SVD_XT", 21),
    "sdxl": TinyFile("checkpoints", "tiny_sdxl.safetensors", "SDXL", 22),
}

#: stock loader -> the test pack's loader with the same outputs, for files the stock one cannot load at tiny size
TINY_LOADER_CLASSES = {
    "VAELoader": "CascadeVTinyVAELoader",
    "CLIPLoader": "CascadeVTinyCLIPLoader",
    "DualCLIPLoader": "CascadeVTinyDualCLIPLoader",
    "CLIPVisionLoader": "CascadeVTinyCLIPVisionLoader",
    "CheckpointLoaderSimple": "CascadeVTinyCheckpointLoader",
    "ImageOnlyCheckpointLoader": "CascadeVTinyImageOnlyCheckpointLoader",
}


def _names(*pairs: tuple[str, str]) -> dict[str, str]:
    return {real: COMFY_FILES[key].name for real, key in pairs}


#: real model file names (shipped workflows and the official video templates) -> tiny stand-ins; the stock loader
#: of each loads the stand-in (UNETLoader, LoraLoaderModelOnly, CheckpointLoaderSimple for LTXV, VAELoader for TAESD)
TINY_SUBSTITUTES = {
    "s1024.effn-f32.pth": TINY_DIT,
    "effnet_encoder.safetensors": TINY_EFFNET,
    **_names(
        ("vae-ft-mse-840000-ema-pruned.safetensors", "vae"),
        ("wan2.1_i2v_480p_14B_fp16.safetensors", "wan"),
        ("wan2.1_i2v_720p_14B_fp16.safetensors", "wan"),
        ("wan2.1_t2v_1.3B_fp16.safetensors", "wan_t2v"),
        ("wan2.2_ti2v_5B_fp16.safetensors", "wan22_5b"),
        ("wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "wan22_i2v_high"),
        ("wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", "wan22_i2v_low"),
        ("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan22_t2v_high"),
        ("wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "wan22_t2v_low"),
        ("wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors", "wan22_lora"),
        ("wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors", "wan22_lora"),
        ("wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors", "wan22_lora"),
        ("wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors", "wan22_lora"),
        ("hunyuanvideo1.5_720p_t2v_fp16.safetensors", "hunyuan15"),
        ("hunyuanvideo1.5_720p_i2v_fp16.safetensors", "hunyuan15"),
        ("hunyuanvideo1.5_1080p_sr_distilled_fp16.safetensors", "hunyuan15_sr"),
        ("ltx-video-2b-v0.9.safetensors", "ltxv"),
        ("ltx-video-2b-v0.9.1.safetensors", "ltxv"),
        ("ltx-video-2b-v0.9.5.safetensors", "ltxv"),
    ),
}
#: real file names whose stand-in needs the test pack's loader (TINY_LOADER_CLASSES) in place of the stock one
TINY_LOADER_SUBSTITUTES = _names(
    ("wan_2.1_vae.safetensors", "wan_vae"),
    ("wan2.2_vae.safetensors", "wan22_vae"),
    ("hunyuanvideo15_vae_fp16.safetensors", "hunyuan15_vae"),
    ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "umt5"),
    ("umt5_xxl_fp16.safetensors", "umt5"),
    ("t5xxl_fp16.safetensors", "t5xxl"),
    ("t5xxl_fp8_e4m3fn_scaled.safetensors", "t5xxl"),
    ("qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen25"),
    ("byt5_small_glyphxl_fp16.safetensors", "byt5"),
    ("clip_vision_h.safetensors", "clip_vision_h"),
    ("sigclip_vision_patch14_384.safetensors", "siglip"),
    ("svd_xt.safetensors", "svd_xt"),
    ("svd.safetensors", "svd_xt"),
    ("sd_xl_base_1.0.safetensors", "sdxl"),
)

TINY_DIT_CONFIG = dict(hidden_size=72, depth=4, num_heads=4, input_size=16, attn_layout="official")

_COMFY_MODELS_SCRIPT = r"""
import sys
comfy_dir, pack_dir, jobs = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = [comfy_dir, pack_dir]
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import comfy.supported_models
import tiny_models

for kind, seed, needs, path in zip(jobs[::4], jobs[1::4], jobs[2::4], jobs[3::4]):
    if needs and not hasattr(comfy.supported_models, needs):
        print(f"skipped {path}: this ComfyUI has no {needs}")
        continue
    tiny_models.write_tiny_file(kind, path, int(seed))
"""


def random_like_init(module: torch.nn.Module, seed: int) -> None:
    """Deterministic random init: fan-in scaled normal weights, small biases (the default init drifts by torch)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / (p[0].numel() ** 0.5))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02 + (1.0 if name.endswith("weight") else 0.0))


def write_tiny_dit(path: Path, seed: int = 0) -> Path:
    from safetensors.torch import save_file

    config = DiTConfig(**TINY_DIT_CONFIG)
    model = CascadeDiT(config)
    random_like_init(model, seed)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, path, metadata={"format": "pt", METADATA_CONFIG_KEY: config.to_json()})
    return path


def write_tiny_effnet(path: Path, seed: int = 1) -> Path:
    from safetensors.torch import save_file

    model = EfficientNetEncoder()
    random_like_init(model, seed)
    save_file({k: v.half().contiguous() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
    return path


def write_comfy_models(comfyui: Path, targets: dict[TinyFile, Path]) -> None:
    """Build the ComfyUI-side tiny models with ComfyUI's own classes in a subprocess (``tiny_models.py`` of the
    test pack, run inside ``comfyui``) and save their random weights to ``targets``' paths."""
    jobs = [str(x) for f, path in targets.items() for x in (f.kind, f.seed, f.needs or "", path)]
    script = [sys.executable, "-c", _COMFY_MODELS_SCRIPT, str(comfyui), str(TINY_LOADERS_PACK), *jobs]
    subprocess.run(script, check=True)


def write_tiny_models(models_dir: Path, comfyui: Path | None = None) -> dict[str, Path]:
    """Write every tiny model under ``models_dir`` (a ComfyUI ``models/`` folder); skip files already there.
    Returns key -> path (the HunyuanVideo 1.5 files only where the ComfyUI has that family)."""
    if comfyui is None:
        import comfyui_env

        comfyui = comfyui_env.comfyui_path(Path(sys.executable))
    out = {"dit": models_dir / "cascadev" / TINY_DIT, "effnet": models_dir / "cascadev" / TINY_EFFNET}
    out.update({key: models_dir / f.folder / f.name for key, f in COMFY_FILES.items()})
    for p in out.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    if not out["dit"].exists():
        write_tiny_dit(out["dit"])
    if not out["effnet"].exists():
        write_tiny_effnet(out["effnet"])
    missing = {f: out[key] for key, f in COMFY_FILES.items() if not out[key].exists()}
    if missing:
        write_comfy_models(comfyui, missing)
    return {key: path for key, path in out.items() if path.exists()}


def with_tiny_models(prompt: dict) -> dict:
    """A copy of an API-format graph that runs on the tiny stand-ins: every model file of the shipped workflows
    and of the official video templates (Wan 2.1 T2V / I2V, Wan 2.2 TI2V 5B, Wan 2.2 14B I2V / T2V with their
    lightx2v LoRAs, HunyuanVideo 1.5 T2V / I2V, LTXV T2V / I2V, SVD, SDXL -> SVD) is replaced by its tiny file,
    and a stock loader that cannot load that tiny file at its widths (``VAELoader`` for the video VAEs,
    ``CLIPLoader`` / ``DualCLIPLoader``, ``CLIPVisionLoader``, ``CheckpointLoaderSimple`` for SDXL,
    ``ImageOnlyCheckpointLoader``) becomes the test pack's loader with the same node id, inputs and outputs.

    Needs a server with the test pack ``tests/comfyui/tiny_loaders`` loaded (``ComfyServer(...,
    extra_custom_nodes=[TINY_LOADERS_PACK])``, as ``tests/comfyui/conftest.py``'s ``comfy_server`` does) and the
    files of :func:`write_tiny_models` in its ``models/``. Not covered: ``hunyuanvideo15_latent_upsampler_1080p``
    (a muted node in the HunyuanVideo 1.5 templates)."""
    out = json.loads(json.dumps(prompt))
    for node in out.values():
        inputs = node.get("inputs", {})
        for name, value in inputs.items():
            if not isinstance(value, str):
                continue
            if value in TINY_SUBSTITUTES:
                inputs[name] = TINY_SUBSTITUTES[value]
            elif value in TINY_LOADER_SUBSTITUTES:
                inputs[name] = TINY_LOADER_SUBSTITUTES[value]
                node["class_type"] = TINY_LOADER_CLASSES.get(node["class_type"], node["class_type"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models_dir", type=Path, help="a ComfyUI models/ folder")
    parser.add_argument("--comfyui", type=Path, default=None, help="ComfyUI tree (default: COMFYUI_PATH or cache)")
    args = parser.parse_args()
    for name, path in write_tiny_models(args.models_dir, args.comfyui).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
