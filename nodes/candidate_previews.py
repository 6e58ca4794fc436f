"""Live candidate thumbnails for the canvas: the chunk search reports each scored candidate (chunk, candidate,
phase, score, its last frame) and this sends a small JPEG of it with its score to the Chunk Sampler node."""

from __future__ import annotations

import base64
import io as bytes_io
import math

import torch

from .comfyui import internal

PREVIEW_EVENT = "cascadev.chunk_candidates"
THUMBNAIL_SIZE = 128


def json_safe(value):
    """``value`` with every non-finite float replaced by None (browsers cannot parse NaN), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def thumbnail(frame: torch.Tensor) -> str:
    """``[3, H, W]`` in 0..1 -> a small JPEG as a data URL."""
    from PIL import Image

    scale = THUMBNAIL_SIZE / max(frame.shape[-2:])
    size = (max(1, round(frame.shape[-2] * scale)), max(1, round(frame.shape[-1] * scale)))
    small = torch.nn.functional.interpolate(frame[None].float(), size=size, mode="bilinear", antialias=True)[0]
    img = Image.fromarray((small.clamp(0, 1).movedim(0, -1).cpu().numpy() * 255).astype("uint8"))
    buf = bytes_io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def send_preview(node_id, data: dict) -> None:
    """Send a candidates message to the canvas (nothing when no server runs, e.g. when called from Python)."""
    try:
        server = getattr(internal("server.PromptServer"), "instance", None)
    except Exception:
        return
    if server is not None:
        server.send_sync(PREVIEW_EVENT, json_safe({"node": node_id, **data}))


class CandidatePreviews:
    """The chunk search's ``on_candidate`` hook: collects each chunk's scored candidates (with their phase and rung)
    and sends them with a thumbnail of each run's last frame; the chunk's chosen candidate is marked."""

    def __init__(self, node_id, mode: str):
        self.node_id, self.mode = node_id, mode
        self.chunk, self.items = None, []

    def __call__(self, info: dict) -> None:
        if info["chunk"] != self.chunk:
            self.chunk, self.items = info["chunk"], []
        if info["event"] == "chosen":
            for item in self.items:
                item["chosen"] = item["candidate"] == info["chosen"]
        else:
            self.items.append({
                "image": thumbnail(info["frame"]), "score": info["score"], "candidate": info["candidate"],
                "phase": info["phase"], "rung": info["rung"], "steps": info["steps"], "chosen": False,
                "final": info["phase"] == "full" and self.mode != "brute_force",
            })  # fmt: skip
        send_preview(self.node_id, {"chunk": self.chunk, "mode": self.mode, "candidates": self.items})
