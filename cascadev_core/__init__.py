"""cascadev_core: CascadeV LDM-VAE decoder and k-step noise-search chunk sampling, in plain torch.

Nothing in this package imports ComfyUI; the ComfyUI nodes in ``nodes/`` are thin wrappers around it.
"""

from .progress import Interrupted, Progress

__all__ = ["Interrupted", "Progress"]
