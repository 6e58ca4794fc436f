"""ComfyUI entry point of the CascadeV node pack (V3 node API).

ComfyUI imports this file as a package. Everything heavy lives in ``cascadev_core`` (pure torch); the node
classes in ``nodes/`` only translate ComfyUI types.
"""

from comfy_api.latest import ComfyExtension, io

from .nodes import NODES, register_model_folders

WEB_DIRECTORY = "./web"

register_model_folders()


class CascadeVExtension(ComfyExtension):
    """Lists the pack's nodes for ComfyUI."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> CascadeVExtension:
    return CascadeVExtension()
