"""One real ComfyUI server per test session, with this pack and the test-only tiny loaders (``tiny_loaders/``)
loaded and tiny generated weights in its models/.

The ComfyUI tree comes from ``$COMFYUI_PATH`` (set by ``scripts/comfyui_env.py test``) or the cached one that
``scripts/comfyui_env.py setup`` unpacks. The server is stopped at the end of the session whatever happens.
"""

import sys
from pathlib import Path

import comfyui_env
import pytest
from make_tiny_models import TINY_LOADERS_PACK, write_tiny_models


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    comfy = comfyui_env.comfyui_path(Path(sys.executable))
    base = tmp_path_factory.mktemp("comfy-base")
    comfyui_env.make_base_directory(base)
    write_tiny_models(base / "models")
    # the test-only loaders that build tiny models where ComfyUI's stock loaders need the released widths
    server = comfyui_env.ComfyServer(Path(sys.executable), comfy, base, extra_custom_nodes=[TINY_LOADERS_PACK])
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def object_info(comfy_server) -> dict:
    return comfy_server.get("/object_info")


@pytest.fixture(scope="session")
def demo_inputs(comfy_server) -> Path:
    """The demo's synthetic input video and guide image in the server's input folder (what the workflows load)."""
    from run_demo import write_demo_inputs

    write_demo_inputs(comfy_server.base / "input")
    return comfy_server.base / "input"
