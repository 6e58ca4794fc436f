"""HTTP routes the canvas extension (``web/cascadev.js``) calls. Registered when the pack loads.

``GET /cascadev/attention_cost`` estimates one refine model call for the model file and settings a graph has:
query ``dit_name`` (a file in models/cascadev; default the released sizes), ``weight_dtype``, ``layout`` (preset
or JSON), ``frames``, ``tile``, ``max_batch``. Every parameter is checked; a bad one gets ``400`` with a JSON
``{"error", "parameter"}`` naming it, never a server error.
"""

from __future__ import annotations

import functools
import logging
import os

import torch
from aiohttp import web

from ..cascadev_core.attention_layouts import attention_cost
from ..cascadev_core.checkpoint import read_config
from ..cascadev_core.config import DiTConfig
from ..cascadev_core.memory import attention_scores_bytes, call_bytes, tokens_per_job
from ..cascadev_core.precision import PRECISION_MODES, Precision, resolve_precision
from .comfyui import ComfyUIFeatureMissing, internal
from .loaders import PRECISION_CHOICES, parse_schedule
from .models import DTYPES, MODEL_FOLDER, model_files

GIB = 1024**3
LIMITS = {"frames": (1, 256), "tile": (2, 1024), "max_batch": (1, 256)}


class BadParameter(ValueError):
    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


def int_parameter(query, name: str, default: int) -> int:
    """An integer query parameter within :data:`LIMITS`, or :class:`BadParameter` naming it."""
    lo, hi = LIMITS[name]
    text = query.get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise BadParameter(name, f"{name}: expected an integer, got {text[:40]!r}") from None
    if not lo <= value <= hi:
        raise BadParameter(name, f"{name}: expected {lo}..{hi}, got {value}")
    return value


@functools.lru_cache(maxsize=16)
def _file_config(path: str, mtime: float) -> DiTConfig:
    return read_config(path)


def model_config(dit_name: str | None) -> DiTConfig:
    """The sizes of ``dit_name`` in models/cascadev (read from its header, cached), or the released ones."""
    if not dit_name:
        return DiTConfig()
    if dit_name not in model_files():
        raise BadParameter("dit_name", f"dit_name: {dit_name[:80]!r} is not a file in models/{MODEL_FOLDER}")
    path = internal("folder_paths.get_full_path")(MODEL_FOLDER, dit_name)
    try:
        return _file_config(path, os.path.getmtime(path))
    except (OSError, ValueError, RuntimeError) as err:
        raise BadParameter(
            "dit_name", f"dit_name: {dit_name[:80]!r} is not a CascadeV DiT checkpoint ({err})"
        ) from None


def cost_report(layout, frames: int, tile: int, max_batch: int, config: DiTConfig, precision: Precision) -> dict:
    """Attention cost and memory estimates of one model call on ``max_batch`` jobs of ``frames x tile x tile``
    latents (see :mod:`cascadev_core.memory` for what the estimates count)."""
    side = tile // config.patch_size
    cost = attention_cost(layout, frames, side, side, config.depth, config.hidden_size, config.mlp_ratio)
    return {
        "frames": frames,
        "tile": tile,
        "max_batch": max_batch,
        "tokens_per_call": tokens_per_job(config, frames, tile) * max_batch,
        "largest_group_tokens": max(cost.group_tokens),
        "attention_ratio": round(cost.ratio, 4),
        "block_ratio": round(cost.block_ratio, 4),
        "activation_gib": round(call_bytes(config, frames, tile, max_batch, precision) / GIB, 3),
        "scores_gib": round(attention_scores_bytes(config, layout, frames, tile, max_batch) / GIB, 3),
    }


def attention_cost_report(query) -> dict:
    """The route's answer for a query mapping; :class:`BadParameter` for the first bad parameter."""
    config = model_config(query.get("dit_name"))
    weight_dtype = query.get("weight_dtype", "auto")
    if weight_dtype not in PRECISION_CHOICES:
        raise BadParameter("weight_dtype", f"weight_dtype: expected one of {', '.join(PRECISION_CHOICES)}")
    device = internal("comfy.model_management.get_torch_device")()
    if weight_dtype in PRECISION_MODES:
        precision = resolve_precision(weight_dtype, device)
    else:  # the whole model in one dtype, attention in fp32 (as the loader does)
        dtype = DTYPES[weight_dtype]
        precision = Precision(weight_dtype, device.type, dtype, dtype, torch.float32, dtype == torch.float16)
    try:
        layout = parse_schedule(query.get("layout", "official"))
    except ValueError as err:
        raise BadParameter("layout", f"layout: {err}") from None
    frames = int_parameter(query, "frames", config.lats_per_vid)
    tile = int_parameter(query, "tile", config.input_size)
    max_batch = int_parameter(query, "max_batch", 1)
    if tile % config.patch_size:
        raise BadParameter("tile", f"tile: expected a multiple of the patch size {config.patch_size}, got {tile}")
    try:
        return cost_report(layout, frames, tile, max_batch, config, precision)
    except ValueError as err:  # the layout does not split this grid
        raise BadParameter("layout", f"layout: {err}") from None


async def attention_cost_route(request: web.Request) -> web.Response:
    try:
        return web.json_response(attention_cost_report(request.query))
    except BadParameter as err:
        return web.json_response({"error": str(err), "parameter": err.parameter}, status=400)


def register_routes() -> None:
    """Add the canvas routes to the running server (nothing to do when the pack is imported without one)."""
    try:
        server = getattr(internal("server.PromptServer"), "instance", None)
    except ComfyUIFeatureMissing as err:
        logging.warning("[CascadeV] canvas routes not registered: %s", err)
        return
    if server is not None:
        server.routes.get("/cascadev/attention_cost")(attention_cost_route)
