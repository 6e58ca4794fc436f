"""ComfyUI node classes of the pack. Thin: they translate ComfyUI types and call ``cascadev_core``."""

from comfy_api.latest import ComfyExtension, io

from . import cascade, chunk_sampler, loaders, native
from .models import register_model_folders
from .routes import register_routes

NODES = [*loaders.NODES, *cascade.NODES, *chunk_sampler.NODES, *native.NODES]


class CascadeVExtension(ComfyExtension):
    """Lists the pack's nodes for ComfyUI."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> CascadeVExtension:
    register_model_folders()
    register_routes()
    return CascadeVExtension()
