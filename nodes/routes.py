"""HTTP routes the canvas extension (``web/cascadev.js``) calls. Registered when the pack loads."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ..cascadev_core.attention_layouts import attention_cost
from ..cascadev_core.config import DiTConfig
from ..cascadev_core.memory import activation_bytes, attention_scores_bytes, tokens_per_job
from .comfyui import ComfyUIFeatureMissing, internal

GIB = 1024**3


def cost_report(layout, frames: int, tile: int, max_batch: int, config: DiTConfig) -> dict:
    """Attention cost and memory estimates of one model call on ``max_batch`` jobs of ``frames x tile x tile``
    latents (see :mod:`cascadev_core.memory` for what the estimates count)."""
    side = tile // config.patch_size
    cost = attention_cost(layout, frames, side, side, config.depth, config.hidden_size, config.mlp_ratio)
    return {
        "tokens_per_call": tokens_per_job(config, frames, tile) * max_batch,
        "largest_group_tokens": max(cost.group_tokens),
        "attention_ratio": round(cost.ratio, 4),
        "block_ratio": round(cost.block_ratio, 4),
        "activation_gib": round(activation_bytes(config, frames, tile, max_batch) / GIB, 3),
        "scores_gib": round(attention_scores_bytes(config, layout, frames, tile, max_batch) / GIB, 3),
    }


async def attention_cost_route(request: web.Request) -> web.Response:
    q = request.query
    try:
        layout = q.get("layout", "official")
        if layout.startswith("["):
            layout = json.loads(layout)
        frames, tile, max_batch = int(q.get("frames", 8)), int(q.get("tile", 128)), int(q.get("max_batch", 1))
        report = cost_report(layout, frames, tile, max_batch, DiTConfig())
    except (ValueError, TypeError) as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response(report)


def register_routes() -> None:
    """Add the canvas routes to the running server (nothing to do when the pack is imported without one)."""
    try:
        server = getattr(internal("server.PromptServer"), "instance", None)
    except ComfyUIFeatureMissing as err:
        logging.warning("[CascadeV] canvas routes not registered: %s", err)
        return
    if server is not None:
        server.routes.get("/cascadev/attention_cost")(attention_cost_route)
