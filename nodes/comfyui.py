"""The one door between the pack and ComfyUI: the pinned node API and every ComfyUI internal the nodes use.

The node API is the numbered ``comfy_api.v0_0_2`` (not ``latest``, which ComfyUI documents as still changing).
Every other ComfyUI module is reached through :func:`internal` by its dotted path, listed in :data:`INTERNALS`
with the ComfyUI versions it was checked against. Nothing is imported until a node runs, so a symbol that a
ComfyUI update removes or renames cannot hide the pack: :func:`missing` reports it, the nodes that declare it in
``REQUIRES`` are registered as unavailable (their description and the server log say what is missing, and running
them raises that message before any work), and every other node still loads and runs.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterable

from comfy_api.v0_0_2 import ComfyExtension, InputImpl, Types, io

__all__ = [
    "INTERNALS",
    "ComfyExtension",
    "ComfyUIFeatureMissing",
    "InputImpl",
    "Types",
    "comfyui_version",
    "internal",
    "io",
    "missing",
    "run_node",
    "unavailable",
]

CHECKED = "0.3.52, 0.3.75"
#: dotted path -> the ComfyUI versions it was checked against (same signature and meaning in each)
INTERNALS: dict[str, str] = {
    # model management, progress and interrupts
    "comfy.model_management.get_torch_device": CHECKED,
    "comfy.model_management.unet_offload_device": CHECKED,
    "comfy.model_management.load_models_gpu": CHECKED,
    "comfy.model_management.should_use_fp16": CHECKED,
    "comfy.model_management.get_total_memory": CHECKED,
    "comfy.model_management.processing_interrupted": CHECKED,
    "comfy.model_management.throw_exception_if_processing_interrupted": CHECKED,
    "comfy.model_management.InterruptProcessingException": CHECKED,
    "comfy.model_patcher.ModelPatcher": CHECKED,
    "comfy.utils.ProgressBar": CHECKED,
    "comfy.utils.common_upscale": CHECKED,
    "latent_preview.get_previewer": CHECKED,
    "comfy.latent_formats.SDXL": CHECKED,
    # sampling
    "comfy.sample.sample": CHECKED,
    "comfy.sample.sample_custom": CHECKED,
    "comfy.sample.fix_empty_latent_channels": CHECKED,
    "comfy.samplers.KSampler": CHECKED,
    "comfy.samplers.calculate_sigmas": CHECKED,
    "comfy.samplers.sampler_object": CHECKED,
    "comfy.k_diffusion.sampling.default_noise_sampler": CHECKED,
    "comfy.k_diffusion.sampling.BrownianTreeNoiseSampler": CHECKED,
    # the native path (the DiT as a MODEL)
    "comfy.model_base.BaseModel": CHECKED,
    "comfy.model_base.ModelType": CHECKED,
    "comfy.supported_models_base.BASE": CHECKED,
    "comfy.model_sampling.ModelSamplingDiscrete": CHECKED,
    "comfy.model_sampling.EPS": CHECKED,
    "comfy.conds.CONDNoiseShape": CHECKED,
    "comfy.conds.CONDConstant": CHECKED,
    # each image-to-video family's own conditioning node
    "comfy_extras.nodes_wan.WanImageToVideo": CHECKED,
    "comfy_extras.nodes_wan.Wan22ImageToVideoLatent": CHECKED,
    "comfy_extras.nodes_lt.LTXVImgToVideo": CHECKED + " (a V1 node in 0.3.52, V3 in 0.3.75)",
    "comfy_extras.nodes_video_model.SVD_img2vid_Conditioning": CHECKED,
    "comfy_extras.nodes_hunyuan.HunyuanVideo15ImageToVideo": "0.3.75 (absent in 0.3.52)",
    # files and the server
    "folder_paths.add_model_folder_path": CHECKED,
    "folder_paths.get_filename_list": CHECKED,
    "folder_paths.get_full_path": CHECKED,
    "folder_paths.get_folder_paths": CHECKED,
    "folder_paths.folder_names_and_paths": CHECKED,
    "folder_paths.models_dir": CHECKED,
    "server.PromptServer": CHECKED,
}

_cache: dict[str, object] = {}


class ComfyUIFeatureMissing(RuntimeError):
    """A ComfyUI internal the pack needs is not in the running ComfyUI."""


def comfyui_version() -> str:
    """The running ComfyUI's version ("unknown" when it does not say)."""
    try:
        return importlib.import_module("comfyui_version").__version__
    except (ImportError, AttributeError):
        return "unknown"


def internal(path: str) -> object:
    """The ComfyUI object at dotted ``path`` (e.g. ``"comfy.sample.sample"``), imported on first use.

    Raises :class:`ComfyUIFeatureMissing` naming the symbol and the versions it was checked against when this
    ComfyUI lacks it, and ``KeyError`` for a path not listed in :data:`INTERNALS` (every internal is documented).
    """
    if path in _cache:
        return _cache[path]
    if path not in INTERNALS:
        raise KeyError(f"{path} is not listed in nodes/comfyui.py INTERNALS; add it with the versions checked")
    module_name, _, attr = path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ComfyUIFeatureMissing(
            f"this ComfyUI ({comfyui_version()}) has no {path} (checked against {INTERNALS[path]}): {err}. "
            "Update ComfyUI, or the CascadeV pack if it is the newer one."
        ) from None
    _cache[path] = obj
    return obj


def missing(paths: Iterable[str]) -> list[str]:
    """The subset of ``paths`` this ComfyUI lacks."""
    out = []
    for path in paths:
        try:
            internal(path)
        except ComfyUIFeatureMissing:
            out.append(path)
    return out


def run_node(path: str, **inputs) -> tuple:
    """Run a stock ComfyUI node class by its dotted path with inputs by name; return its outputs as a tuple.

    Works for V3 nodes (classmethod ``execute`` returning ``io.NodeOutput``) and V1 nodes (instance method named
    by ``FUNCTION``), so a node that moves between the two styles across ComfyUI versions keeps working.
    """
    cls = internal(path)
    if isinstance(cls, type) and issubclass(cls, io.ComfyNode):
        out = cls.execute(**inputs)
    else:
        out = getattr(cls(), cls.FUNCTION)(**inputs)
    if inspect.isawaitable(out):
        raise ComfyUIFeatureMissing(f"{path} is asynchronous in this ComfyUI ({comfyui_version()}); update the pack")
    return tuple(out.args) if isinstance(out, io.NodeOutput) else tuple(out)


def unavailable(node: type[io.ComfyNode], absent: list[str]) -> type[io.ComfyNode]:
    """``node`` as registered when this ComfyUI lacks ``absent``: same id and inputs (saved workflows still load),
    a description saying what is missing, and an ``execute`` that raises that message before any work."""
    message = (
        f"unavailable in this ComfyUI ({comfyui_version()}): it lacks {', '.join(absent)} "
        f"(checked against {INTERNALS[absent[0]]}). Update ComfyUI."
    )
    logging.warning("[CascadeV] %s is %s", node.__name__, message)

    class Unavailable(node):
        @classmethod
        def define_schema(cls) -> io.Schema:
            schema = node.define_schema()
            schema.display_name = f"{schema.display_name} (unavailable)"
            schema.description = f"{message}\n\n{schema.description or ''}"
            return schema

        @classmethod
        def execute(cls, **kwargs) -> io.NodeOutput:
            raise ComfyUIFeatureMissing(f"{node.__name__}: {message}")

    Unavailable.__name__ = Unavailable.__qualname__ = node.__name__
    return Unavailable
