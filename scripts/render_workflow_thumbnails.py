#!/usr/bin/env python3
"""Render a thumbnail per shipped UI workflow (``workflows/<name>.jpg``) for ComfyUI's template browser.

    .venv/bin/python scripts/render_workflow_thumbnails.py

Each workflow is loaded into the real frontend in headless Chromium, the canvas is cropped to the graph and saved
as a 512-pixel-wide JPEG next to the workflow (the template browser looks for ``<name>.jpg``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfyui_env  # noqa: E402
from frontend_browser import comfy_page, load_workflow  # noqa: E402

WORKFLOWS = comfyui_env.REPO / "workflows"


def main() -> int:
    from PIL import Image

    py, comfy = comfyui_env.setup()
    with (
        tempfile.TemporaryDirectory() as tmp,
        comfyui_env.ComfyServer(py, comfy, Path(tmp)) as server,
        comfy_page(server, viewport=(1800, 1000)) as (page, _),
    ):
        for path in sorted(WORKFLOWS.glob("*.json")):
            load_workflow(page, json.loads(path.read_text()))
            page.evaluate("() => { const c = window.app.canvas; c.ds.scale = 0.55; c.ds.offset = [60, 420];"
                          " c.setDirty(true, true); }")  # fmt: skip
            page.wait_for_timeout(800)
            png = Path(tmp) / f"{path.stem}.png"
            page.locator("#graph-canvas").screenshot(path=str(png))
            img = Image.open(png).convert("RGB")
            img.thumbnail((512, 512))
            img.save(path.with_suffix(".jpg"), quality=85)
            print(f"wrote {path.with_suffix('.jpg').relative_to(comfyui_env.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
