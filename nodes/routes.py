"""HTTP routes the canvas extension (``web/cascadev.js``) calls. Registered when the pack loads."""

from __future__ import annotations

import json

from aiohttp import web

from ..cascadev_core.attention_layouts import attention_cost
from ..cascadev_core.config import DiTConfig

GIB = 1024**3


def cost_report(layout, frames: int, tile: int, max_batch: int, config: DiTConfig) -> dict:
    """Attention cost and a rough memory estimate of one model call on a ``frames x tile x tile`` latent window.

    ``activation_gib``: the hidden states of one block for all tokens of the call (qkv, attention output, MLP
    hidden: about ``12 D`` values per token, fp16); ``scores_gib``: the attention matrix of the largest group if
    the attention kernel materialises it (math kernel, fp32) — memory-efficient kernels do not.
    """
    side = tile // config.patch_size
    cost = attention_cost(layout, frames, side, side, config.depth, config.hidden_size, config.mlp_ratio)
    tokens = cost.tokens * max_batch
    biggest = max(cost.group_tokens)
    return {
        "tokens_per_call": tokens,
        "largest_group_tokens": biggest,
        "attention_ratio": round(cost.ratio, 4),
        "block_ratio": round(cost.block_ratio, 4),
        "activation_gib": round(tokens * 12 * config.hidden_size * 2 / GIB, 3),
        "scores_gib": round(max_batch * (cost.tokens // biggest) * biggest**2 * config.num_heads * 4 / GIB, 3),
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
    from server import PromptServer

    PromptServer.instance.routes.get("/cascadev/attention_cost")(attention_cost_route)
