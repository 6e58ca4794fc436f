"""Model files and ComfyUI model management for the pack's own model types (the CascadeV DiT, the effnet encoder).

Both are plain ``torch.nn.Module`` objects from ``cascadev_core``, each owned by exactly one ComfyUI
``ModelPatcher`` made by its loader: ComfyUI decides the device, offloads them between runs and frees them with its
own memory manager. Everything else (the native MODEL, the refine) works through that patcher or its clones.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from .comfyui import internal

MODEL_FOLDER = "cascadev"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: what loading and placing a model needs
REQUIRES = (
    "folder_paths.get_full_path",
    "comfy.model_patcher.ModelPatcher",
    "comfy.model_management.get_torch_device",
    "comfy.model_management.unet_offload_device",
    "comfy.model_management.load_models_gpu",
)


def register_model_folders() -> None:
    """Register ``models/cascadev`` (DiT and effnet weights) with ComfyUI's folder registry."""
    registry = internal("folder_paths.folder_names_and_paths")
    path = os.path.join(internal("folder_paths.models_dir"), MODEL_FOLDER)
    if MODEL_FOLDER not in registry:
        internal("folder_paths.add_model_folder_path")(MODEL_FOLDER, path, is_default=True)
    registry[MODEL_FOLDER][1].update({".pth", ".pt", ".safetensors"})


def model_files() -> list[str]:
    """The files in ``models/cascadev`` (empty when the folder registry is unavailable)."""
    try:
        return internal("folder_paths.get_filename_list")(MODEL_FOLDER)
    except Exception:  # define_schema must never fail: an empty list still lets workflows load
        return []


def model_path(name: str, input_name: str) -> str:
    """Full path of ``name`` in ``models/cascadev``, or FileNotFoundError naming the input and the folder."""
    message = check_model_file(name)
    if message is not True:
        raise FileNotFoundError(f"{input_name}: {message}")
    return internal("folder_paths.get_full_path")(MODEL_FOLDER, name)


def check_model_file(name) -> bool | str:
    """For ``validate_inputs`` (ComfyUI prefixes the input's name): True, or a message naming ``models/cascadev``
    and what it holds (never a server path, never an exception, whatever the value's type)."""
    if isinstance(name, str) and name and internal("folder_paths.get_full_path")(MODEL_FOLDER, name) is not None:
        return True
    files = model_files()
    listing = f"it has: {', '.join(files[:8])}{' ...' if len(files) > 8 else ''}" if files else "it is empty"
    shown = repr(name) if not isinstance(name, str) else f"'{name}'"
    return f"{shown} is not a file in models/{MODEL_FOLDER} ({listing}); put the file there"


@contextlib.contextmanager
def loading(path: str, input_name: str, name: str):
    """Errors while loading ``path`` reach the client naming the input and the file, never the server's path."""
    try:
        yield
    except (ValueError, OSError, RuntimeError) as err:
        folder = os.path.dirname(path)
        message = str(err).replace(path, name).replace(folder, f"models/{MODEL_FOLDER}")
        raise ValueError(f"{input_name}: {message}") from None


def memory_totals() -> dict[str, int | str]:
    """Total bytes of the model's device (``"model"``) and of this machine's RAM (``"host"``), for
    :func:`cascadev_core.footprint.check_fits`; when the model runs on the CPU both are the same RAM."""
    total = internal("comfy.model_management.get_total_memory")
    device = internal("comfy.model_management.get_torch_device")()
    host = int(total(torch.device("cpu")))
    return {"host": host, "model": "host" if device.type == "cpu" else int(total(device))}


def resolve_dtype(choice: str, device: torch.device) -> torch.dtype:
    """``auto`` = the official recipe (fp16 weights, fp32 attention) where fp16 is fast, else fp32."""
    if choice == "auto":
        return torch.float16 if internal("comfy.model_management.should_use_fp16")(device) else torch.float32
    return DTYPES[choice]


@dataclass
class OwnedModel:
    """A core module owned by one ComfyUI ``ModelPatcher`` (what flows on the pack's model links)."""

    patcher: object  # comfy.model_patcher.ModelPatcher

    def load(self) -> torch.device:
        """Ask ComfyUI to place the model on its device (offloading others as needed); return that device."""
        internal("comfy.model_management.load_models_gpu")([self.patcher])
        return self.patcher.load_device


@dataclass
class CascadeVModel(OwnedModel):
    """A ``CASCADEV_MODEL`` link: the patcher owning the DiT (inside ComfyUI's MODEL wrapper when available), the
    DiT's configuration, and how to rebuild it elsewhere (file, dtype, layout: what CascadeV Workers load)."""

    config: object = None  # cascadev_core.config.DiTConfig
    dit_module: torch.nn.Module | None = None
    spec: object = None  # cascadev_core.executor.ModelSpec

    @property
    def dit(self) -> torch.nn.Module:
        return self.dit_module


@dataclass
class CascadeVEffnet(OwnedModel):
    """A ``CASCADEV_EFFNET`` link: the patcher owning the effnet encoder."""

    @property
    def encoder(self) -> torch.nn.Module:
        return self.patcher.model


def patch(module: torch.nn.Module) -> object:
    """Wrap a module for ComfyUI's model management, kept on the offload device until used."""
    module.to(internal("comfy.model_management.unet_offload_device")())
    return internal("comfy.model_patcher.ModelPatcher")(
        module,
        load_device=internal("comfy.model_management.get_torch_device")(),
        offload_device=internal("comfy.model_management.unet_offload_device")(),
    )
