#!/usr/bin/env python3
"""The README's demo: a real ComfyUI with this pack runs a shipped API workflow on tiny generated weights.

Run it through ``python3 scripts/comfyui_env.py demo`` (which prepares the environment first). It

1. writes tiny random weights of the real architectures into ``.demo-base/models`` (no download),
2. writes a short synthetic input video and guide image into ``.demo-base/input``,
3. starts ComfyUI on loopback with the pack, queues ``workflows/api/cascadev_refine_video.json`` (its model
   names swapped for the tiny files) on ``/prompt``,
   shows the server's progress messages as a bar, and stops the server,
4. leaves the result under ``output/`` (the tiny weights are random: the video shows the pipeline ran, not a
   good picture; put real weights in ``models/cascadev`` and ``models/vae`` of your ComfyUI for that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfyui_env  # noqa: E402
from make_tiny_models import with_tiny_models, write_tiny_models  # noqa: E402

REPO = comfyui_env.REPO
DEFAULT_WORKFLOW = REPO / "workflows" / "api" / "cascadev_refine_video.json"
DEMO_VIDEO = "cascadev_demo_input.mp4"
DEMO_IMAGE = "cascadev_demo_guide.png"


def write_demo_video(path: Path, frames: int = 9, size: int = 256, fps: int = 8) -> None:
    """A moving colour gradient with a bouncing disc: ``frames`` RGB frames of ``size`` x ``size``."""
    import av

    yy, xx = np.mgrid[0:size, 0:size] / size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            phase = i / frames
            img = np.stack([xx, yy, 0.5 + 0.5 * np.sin(2 * np.pi * (xx + yy + phase))], -1)
            cx, cy = 0.3 + 0.4 * phase, 0.5 + 0.2 * np.sin(2 * np.pi * phase)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < 0.02] = (1.0, 0.9, 0.2)
            frame = av.VideoFrame.from_ndarray((img * 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def write_demo_inputs(input_dir: Path) -> None:
    """The inputs the shipped workflows load: a short video and a guide image (its first frame)."""
    import av
    from PIL import Image

    if not (input_dir / DEMO_VIDEO).exists():
        write_demo_video(input_dir / DEMO_VIDEO)
    if not (input_dir / DEMO_IMAGE).exists():
        with av.open(str(input_dir / DEMO_VIDEO)) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
        Image.fromarray(frame).save(input_dir / DEMO_IMAGE)


def progress_bar(done: int, total: int, label: str, width: int = 30) -> None:
    filled = int(width * done / max(total, 1))
    print(f"\r  {label[:28]:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", flush=True)


def watch_progress(url: str, client_id: str, titles: dict[str, str], stop: threading.Event) -> None:
    """Print ComfyUI's websocket progress messages as a bar until ``stop`` is set."""
    import aiohttp

    async def run() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws?clientId={client_id}") as ws:
            while not stop.is_set():
                try:
                    msg = await ws.receive(timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("type") == "progress":
                    d = data["data"]
                    progress_bar(d["value"], d["max"], titles.get(str(d.get("node")), str(d.get("node"))))
                elif data.get("type") == "executing" and data["data"].get("node"):
                    print(f"\n  running {titles.get(data['data']['node'], data['data']['node'])}", end="", flush=True)

    try:
        asyncio.run(run())
    except Exception as err:  # progress display is best effort; the run itself is checked through /history
        print(f"\n  (no live progress: {err})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="ComfyUI tree")
    parser.add_argument("--workflow", type=Path, default=DEFAULT_WORKFLOW, help="API-format workflow to queue")
    args = parser.parse_args()

    base = comfyui_env.make_base_directory(REPO / ".demo-base")
    print("[demo] writing tiny random weights (real architectures) ...")
    write_tiny_models(base / "models", args.comfyui)
    write_demo_inputs(base / "input")
    output = REPO / "output"
    output.mkdir(exist_ok=True)
    prompt = with_tiny_models(json.loads(args.workflow.read_text()))
    titles = {k: v.get("_meta", {}).get("title", v["class_type"]) for k, v in prompt.items()}

    server = comfyui_env.ComfyServer(Path(sys.executable), args.comfyui, base, output=output)
    print(f"[demo] starting ComfyUI (log: {server.log_path}) ...")
    with server:
        client_id = uuid.uuid4().hex
        stop = threading.Event()
        watcher = threading.Thread(target=watch_progress, args=(server.url, client_id, titles, stop), daemon=True)
        watcher.start()
        status, body = server.post("/prompt", {"prompt": prompt, "client_id": client_id})
        if status != 200:
            print(f"[demo] the server rejected the workflow: {json.dumps(body, indent=1)}")
            return 1
        entry = server.wait(body["prompt_id"], timeout=1800)
        stop.set()
        watcher.join(timeout=5)
        print()
    if entry["status"]["status_str"] != "success":
        print(f"[demo] the workflow failed: {json.dumps(entry['status'], indent=1)[:4000]}")
        return 1
    files = [
        output / item.get("subfolder", "") / item["filename"]
        for node_out in entry["outputs"].values()
        for items in node_out.values()
        if isinstance(items, list)
        for item in items
        if isinstance(item, dict) and "filename" in item
    ]
    for f in files:
        print(f"[demo] wrote {f.relative_to(REPO)} ({f.stat().st_size} bytes)")
    return 0 if files else 1


if __name__ == "__main__":
    sys.exit(main())
