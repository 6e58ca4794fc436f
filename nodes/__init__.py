"""ComfyUI node classes of the pack. Thin: they translate ComfyUI types and call ``cascadev_core``."""

from . import cascade, loaders
from .models import register_model_folders

NODES = [*loaders.NODES, *cascade.NODES]

__all__ = ["NODES", "register_model_folders"]
