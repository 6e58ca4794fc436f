"""Model files and ComfyUI model management for the pack's own model types (the CascadeV DiT, the effnet encoder).

Both are plain ``torch.nn.Module`` objects from ``cascadev_core`` wrapped in ComfyUI's ``ModelPatcher``, so
ComfyUI decides the device, offloads them between runs and frees them with its own memory manager.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths
import torch

MODEL_FOLDER = "cascadev"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def register_model_folders() -> None:
    """Register ``models/cascadev`` (DiT and effnet weights) with ComfyUI's folder registry."""
    path = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(MODEL_FOLDER, path, is_default=True)
    folder_paths.folder_names_and_paths[MODEL_FOLDER][1].update({".pth", ".pt", ".safetensors"})


def model_files() -> list[str]:
    return folder_paths.get_filename_list(MODEL_FOLDER)


def model_path(name: str, what: str) -> str:
    """Full path of ``name`` in ``models/cascadev``, or an error naming the folders searched and the file."""
    path = folder_paths.get_full_path(MODEL_FOLDER, name)
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
        raise FileNotFoundError(f"{what} file '{name}' was not found in the models/{MODEL_FOLDER} folder ({folders}).")
    return path


def check_model_file(name: str, what: str) -> bool | str:
    """For ``validate_inputs``: True, or a message naming the models/cascadev folders and the missing file."""
    if folder_paths.get_full_path(MODEL_FOLDER, name) is not None:
        return True
    folders = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
    return f"{what} file '{name}' was not found in the models/{MODEL_FOLDER} folder ({folders}); put it there"


def resolve_dtype(choice: str, device: torch.device) -> torch.dtype:
    """``auto`` = the official recipe (fp16 weights, fp32 attention) where fp16 is fast, else fp32."""
    if choice == "auto":
        return torch.float16 if mm.should_use_fp16(device) else torch.float32
    return DTYPES[choice]


@dataclass
class CascadeVModel:
    """What flows on a ``CASCADEV_MODEL`` link: the patcher (owns the DiT) and its configuration."""

    patcher: comfy.model_patcher.ModelPatcher
    config: object  # cascadev_core.config.DiTConfig

    @property
    def dit(self) -> torch.nn.Module:
        return self.patcher.model

    def load(self) -> torch.device:
        """Ask ComfyUI to place the model on its device (offloading others as needed); return that device."""
        mm.load_models_gpu([self.patcher])
        return self.patcher.load_device


@dataclass
class CascadeVEffnet:
    """What flows on a ``CASCADEV_EFFNET`` link: the patcher owning the effnet encoder."""

    patcher: comfy.model_patcher.ModelPatcher

    @property
    def encoder(self) -> torch.nn.Module:
        return self.patcher.model

    def load(self) -> torch.device:
        mm.load_models_gpu([self.patcher])
        return self.patcher.load_device


def patch(module: torch.nn.Module, dtype: torch.dtype) -> comfy.model_patcher.ModelPatcher:
    """Wrap a core module for ComfyUI's model management (kept on the offload device until used)."""
    module = module.to(dtype=dtype).eval().requires_grad_(False)
    module.to(mm.unet_offload_device())
    return comfy.model_patcher.ModelPatcher(
        module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )
