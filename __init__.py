"""ComfyUI entry point of the CascadeV node pack (V3 node API: ``comfy_entrypoint``).

Everything heavy lives in ``cascadev_core`` (pure torch); the node classes in ``nodes/`` only translate ComfyUI
types. Outside ComfyUI (e.g. when pytest collects this folder as a package) there is nothing to register.
"""

import importlib.util

WEB_DIRECTORY = "./web"

if importlib.util.find_spec("comfy_api") is not None:
    from .nodes import comfy_entrypoint

    __all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
