"""CascadeV Workers in a real ComfyUI server: Refine on 2 Ray CPU workers saves the same latent as Refine without
workers (bitwise: the server and the workers both run torch on 1 thread), with the same progress and previews;
an interrupt stops it; the workers serve the next prompt; nothing of Ray outlives the server (stopped by SIGTERM).

This module runs its own server (it must stop it to check the exit), with ``OMP_NUM_THREADS=1`` and latent previews.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import comfyui_env
import psutil
import pytest
import torch
from make_tiny_models import TINY_DIT, TINY_EFFNET, write_tiny_dit, write_tiny_effnet
from safetensors.torch import load_file

pytestmark = [pytest.mark.comfyui, pytest.mark.usefixtures("ray_module")]

STEPS = 3
CALLS_PER_STEP = 18  # 9 frames -> 2 windows of 8; 32x32 latents -> 3x3 tiles of 16


def graph(seed: int, steps: int = STEPS, local: bool = True) -> dict:
    """Refine the demo video twice from the same conditioning: here ("6") and on 2 CPU workers ("9")."""
    node = lambda cls, **inputs: {"class_type": cls, "inputs": inputs}  # noqa: E731
    prompt = {
        "1": node("LoadVideo", file="cascadev_demo_input.mp4"),
        "2": node("GetVideoComponents", video=["1", 0]),
        "3": node("CascadeVEffnetLoader", effnet_name=TINY_EFFNET, weight_dtype="fp32"),
        "4": node("CascadeVModelLoader", dit_name=TINY_DIT, weight_dtype="fp32", attention_layout="official"),
        "5": node("CascadeVEncode", effnet=["3", 0], images=["2", 0], cascadev_model=["4", 0]),
        "6": node("CascadeVRefine", cascadev_model=["4", 0], conditioning=["5", 0], seed=seed, steps=steps,
                  sampler="euler_a"),
        "7": node("SaveLatent", samples=["6", 0], filename_prefix="ray_test/local"),
        "8": node("CascadeVWorkers", address="", workers=2, gpus_per_worker=0.0),
        "9": node("CascadeVRefine", cascadev_model=["4", 0], conditioning=["5", 0], seed=seed, steps=steps,
                  sampler="euler_a", workers=["8", 0]),
        "10": node("SaveLatent", samples=["9", 0], filename_prefix="ray_test/workers"),
    }  # fmt: skip
    if not local:
        del prompt["6"], prompt["7"]
    return prompt


def ray_processes(pid: int) -> dict[int, str]:
    out = {}
    for proc in psutil.Process(pid).children(recursive=True):
        with_name = (proc.name(), " ".join(proc.cmdline()[:2]))
        if any("ray" in part.lower() for part in with_name):
            out[proc.pid] = with_name[0]
    return out


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def server(ray_module, tmp_path_factory):
    from run_demo import write_demo_inputs

    base = comfyui_env.make_base_directory(tmp_path_factory.mktemp("comfy-ray"))
    (base / "models" / "cascadev").mkdir(parents=True, exist_ok=True)
    write_tiny_dit(base / "models" / "cascadev" / TINY_DIT)
    write_tiny_effnet(base / "models" / "cascadev" / TINY_EFFNET)
    write_demo_inputs(base / "input")
    py = Path(sys.executable)
    server = comfyui_env.ComfyServer(
        py, comfyui_env.comfyui_path(py), base, env={"OMP_NUM_THREADS": "1"}, args=["--preview-method", "latent2rgb"]
    )
    try:
        yield server.start()
    finally:
        server.stop()


def run(server, prompt: dict, interrupt_at: dict[str, int] | None = None) -> dict:
    """Queue ``prompt`` and follow it on the websocket: per node, its progress values and the previews sent while
    it ran; ``interrupt_at = {node: value}`` posts /interrupt once that node's progress reaches the value."""
    import aiohttp

    client_id = uuid.uuid4().hex
    progress: dict[str, list[int]] = {}
    previews: dict[str, int] = {}

    async def follow() -> dict:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{server.url}/ws?clientId={client_id}") as ws,
        ):
            status, body = server.post("/prompt", {"prompt": prompt, "client_id": client_id})
            assert status == 200, body
            running = None
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    previews[running] = previews.get(running, 0) + 1
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data["type"] == "executing":
                    running = data["data"]["node"]
                elif data["type"] == "progress":
                    node, value = data["data"]["node"], data["data"]["value"]
                    progress.setdefault(node, []).append(value)
                    if interrupt_at and node in interrupt_at and value >= interrupt_at[node]:
                        interrupt_at.pop(node)
                        server.post("/interrupt", {})
                elif data["type"] in ("execution_interrupted", "execution_error", "execution_success"):
                    return data
        raise AssertionError("websocket closed before the run ended")

    last = asyncio.run(asyncio.wait_for(follow(), timeout=900))
    entry = server.wait(last["data"]["prompt_id"], timeout=120)
    return {"last": last, "entry": entry, "progress": progress, "previews": previews}


def saved(server, entry, node_id) -> torch.Tensor:
    item = entry["outputs"][node_id]["latents"][0]
    return load_file(server.base / "output" / item["subfolder"] / item["filename"])["latent_tensor"]


def workers_of(server) -> list[int]:
    return sorted(pid for pid, name in ray_processes(server.proc.pid).items() if "_Worker" in name)


@pytest.fixture(scope="module")
def first(server):
    return run(server, graph(seed=11))


def test_refine_on_workers_saves_the_same_latent_with_the_same_progress(server, first):
    entry = first["entry"]
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    local, remote = saved(server, entry, "7"), saved(server, entry, "10")
    assert local.shape == (9, 4, 32, 32)
    assert torch.equal(remote, local)
    calls = STEPS * CALLS_PER_STEP
    assert first["progress"]["9"] == first["progress"]["6"] == list(range(1, calls + 1))
    assert first["previews"].get("9", 0) == first["previews"].get("6", 0) >= STEPS - 1  # one per step
    assert len(workers_of(server)) == 2


def test_interrupt_on_workers_stops_within_one_call(server, first):
    stop_at = 2 * CALLS_PER_STEP + 1
    out = run(server, graph(seed=12, steps=40, local=False), interrupt_at={"9": stop_at})
    assert out["last"]["type"] == "execution_interrupted" and out["last"]["data"]["node_id"] == "9", out["last"]
    after = [v for v in out["progress"]["9"] if v > stop_at]
    assert len(after) <= 1, f"{len(after)} more calls reported after the interrupt"
    assert out["previews"].get("9", 0) >= 2  # latent previews of the finished steps
    assert "10" not in out["entry"]["outputs"]


def test_workers_serve_the_next_prompt(server, first):
    before = workers_of(server)
    entry = run(server, graph(seed=13))["entry"]
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    assert torch.equal(saved(server, entry, "10"), saved(server, entry, "7"))
    assert workers_of(server) == before  # the same processes, models still loaded


def test_server_exit_leaves_no_ray_process(server, first):
    started = ray_processes(server.proc.pid)
    assert len(started) >= 4, started  # gcs_server, raylet, 2 workers, ...
    server.stop()  # SIGTERM, as a service manager would
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p) for p in started):
        time.sleep(0.2)
    left = {p: n for p, n in started.items() if alive(p)}
    for pid in left:  # started by this test: do not leave them behind
        os.kill(pid, signal.SIGKILL)
    assert not left, f"Ray processes outlived the server: {left}"
