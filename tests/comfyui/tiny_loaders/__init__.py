"""Test-only ComfyUI node pack: loaders for the tiny models of ``scripts/make_tiny_models.py`` where ComfyUI's
stock loaders cannot take a tiny file (their detection hard-codes the released widths).

Each node has the outputs of the stock loader it stands in for (``with_tiny_models`` swaps the class type, keeps
the node id and inputs) and builds real ComfyUI objects through ComfyUI's own classes (``comfy.sd.VAE``,
``comfy.supported_models`` + ``ModelPatcher``, ``comfy.clip_vision.ClipVisionModel``, ``comfy.sd.CLIP``), at
the tiny widths the file's metadata gives. The text encoders are the exception: a tiny byte-embedding encoder
inside a real ``comfy.sd.CLIP`` gives the family's real conditioning shapes (a real T5-XXL / Qwen cannot be
tiny: its vocabulary alone is a billion values). Only the test server loads this pack (``tests/comfyui/conftest``).
"""

from __future__ import annotations

import folder_paths

from . import tiny_models

CATEGORY = "CascadeV/tests"


def full_path(folder: str, name: str) -> str:
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        raise FileNotFoundError(f"{name} is not in models/{folder}")
    return path


def combo(folder: str) -> tuple:
    return (folder_paths.get_filename_list(folder),)


class CascadeVTinyVAELoader:
    """VAELoader for the tiny video VAEs (Wan 2.1 / 2.2, HunyuanVideo 1.5): ``comfy.sd.VAE``'s own detection
    path at the file's tiny widths. A file without a tiny config loads as VAELoader loads it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": combo("vae")}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, vae_name):
        import comfy.sd

        sd, config = tiny_models.read_tiny_file(full_path("vae", vae_name))
        if config.get("kind") != "vae":
            return (comfy.sd.VAE(sd=sd),)
        return (tiny_models.load_vae(sd, config["family"], config["widths"]),)


class CascadeVTinyCLIPLoader:
    """CLIPLoader for the tiny text encoders: conditioning of the ``type`` family's real shapes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"clip_name": combo("text_encoders"), "type": ("STRING", {"default": "wan"})},
            "optional": {"device": ("STRING", {"default": "default"})},
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, clip_name, type, device="default"):
        sd, _ = tiny_models.read_tiny_file(full_path("text_encoders", clip_name))
        return (tiny_models.load_text_encoder(sd, type),)


class CascadeVTinyDualCLIPLoader:
    """DualCLIPLoader for the tiny text encoders: the first file's width (HunyuanVideo 1.5: Qwen 2.5 VL, 3584)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip_name1": combo("text_encoders"),
                "clip_name2": combo("text_encoders"),
                "type": ("STRING", {"default": "hunyuan_video_15"}),
            },
            "optional": {"device": ("STRING", {"default": "default"})},
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, clip_name1, clip_name2, type, device="default"):
        sd, _ = tiny_models.read_tiny_file(full_path("text_encoders", clip_name1))
        return (tiny_models.load_text_encoder(sd, type),)


class CascadeVTinyCLIPVisionLoader:
    """CLIPVisionLoader for the tiny CLIP vision files: ``ClipVisionModel`` of the released config, two layers."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": combo("clip_vision")}}

    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, clip_name):
        sd, config = tiny_models.read_tiny_file(full_path("clip_vision", clip_name))
        return (tiny_models.load_clip_vision(sd, config["config"]),)


class CascadeVTinyCheckpointLoader:
    """CheckpointLoaderSimple for the tiny SDXL checkpoint: ``supported_models.SDXL`` on the widths ComfyUI's
    detection reads from the weights, its VAE through ``comfy.sd.VAE``, the tiny text encoder (2048 + pooled)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": combo("checkpoints")}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, ckpt_name):
        sd, config = tiny_models.read_tiny_file(full_path("checkpoints", ckpt_name))
        model = tiny_models.load_diffusion_checkpoint(sd, "SDXL")
        clip = tiny_models.load_text_encoder(tiny_models.sub_state_dict(sd, "text_encoders.tiny."), "sdxl")
        return model, clip, tiny_vae(sd, config)


class CascadeVTinyImageOnlyCheckpointLoader:
    """ImageOnlyCheckpointLoader for the tiny SVD-XT checkpoint: ``supported_models.SVD_img2vid``, its temporal
    VAE through ``comfy.sd.VAE``, and a CLIP vision model whose image embeds have the released 1024 width."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": combo("checkpoints")}}

    RETURN_TYPES = ("MODEL", "CLIP_VISION", "VAE")
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, ckpt_name):
        sd, config = tiny_models.read_tiny_file(full_path("checkpoints", ckpt_name))
        model = tiny_models.load_diffusion_checkpoint(sd, "SVD_img2vid")
        clip_vision = tiny_models.load_clip_vision(
            tiny_models.sub_state_dict(sd, "clip_vision."), config["clip_vision"]
        )
        return model, clip_vision, tiny_vae(sd, config)


def tiny_vae(sd: dict, config: dict):
    vae = config["vae"]
    return tiny_models.load_vae(tiny_models.sub_state_dict(sd, "first_stage_model."), vae["family"], vae["widths"])


NODE_CLASS_MAPPINGS = {
    cls.__name__: cls
    for cls in (
        CascadeVTinyVAELoader,
        CascadeVTinyCLIPLoader,
        CascadeVTinyDualCLIPLoader,
        CascadeVTinyCLIPVisionLoader,
        CascadeVTinyCheckpointLoader,
        CascadeVTinyImageOnlyCheckpointLoader,
    )
}
NODE_DISPLAY_NAME_MAPPINGS = {name: name.replace("CascadeVTiny", "Tiny test ") for name in NODE_CLASS_MAPPINGS}
