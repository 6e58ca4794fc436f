"""ComfyUI node classes of the pack. Thin: they translate ComfyUI types and call ``cascadev_core``.

Each node lists the ComfyUI internals it needs in ``REQUIRES``; a node whose internals this ComfyUI lacks is
registered as unavailable (see :func:`.comfyui.unavailable`), so one changed internal never hides the pack.
"""

from . import chunk_sampler, decode, encode, loaders, native, refine, search_options, workers
from .comfyui import ComfyExtension, io, missing, unavailable
from .models import register_model_folders
from .routes import register_routes

NODES = [
    *loaders.NODES,
    *encode.NODES,
    *refine.NODES,
    *decode.NODES,
    *search_options.NODES,
    *chunk_sampler.NODES,
    *native.NODES,
    *workers.NODES,
]


def registered_nodes() -> list[type[io.ComfyNode]]:
    """Every node class, or its unavailable stand-in where this ComfyUI lacks what it needs."""
    out = []
    for node in NODES:
        absent = missing(getattr(node, "REQUIRES", ()))
        out.append(unavailable(node, absent) if absent else node)
    return out


class CascadeVExtension(ComfyExtension):
    """Lists the pack's nodes for ComfyUI."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return registered_nodes()


async def comfy_entrypoint() -> CascadeVExtension:
    register_model_folders()
    register_routes()
    return CascadeVExtension()
