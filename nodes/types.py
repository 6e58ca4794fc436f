"""The few link types the pack adds; everything else uses ComfyUI's core types (IMAGE, LATENT, VAE, VIDEO, ...)."""

from .comfyui import io

CascadeVModelType = io.Custom("CASCADEV_MODEL")
CascadeVEffnetType = io.Custom("CASCADEV_EFFNET")
CascadeVLayoutType = io.Custom("CASCADEV_LAYOUT")
CascadeVRefineOptionsType = io.Custom("CASCADEV_REFINE_OPTIONS")
CascadeVWorkersType = io.Custom("CASCADEV_WORKERS")
