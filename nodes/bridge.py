"""Glue between ComfyUI's runtime and cascadev_core's plain callbacks: progress bars and interrupts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..cascadev_core.progress import Interrupted, Progress
from .comfyui import internal

#: what every node that reports progress or honours interrupts needs
REQUIRES = (
    "comfy.utils.ProgressBar",
    "comfy.model_management.processing_interrupted",
    "comfy.model_management.throw_exception_if_processing_interrupted",
    "comfy.model_management.InterruptProcessingException",
)


def comfy_progress(total: int, preview=None) -> Progress:
    """A core :class:`Progress` that drives ComfyUI's progress bar and polls its interrupt flag.

    Args:
        total: units of work (model evaluations, decoded slices).
        preview: optional ``fn(done) -> preview | None`` whose result is sent with each update
            (ComfyUI's latent-preview tuple ``("JPEG", PIL.Image, max_size)``).
    """
    bar = internal("comfy.utils.ProgressBar")(total)

    def on_step(done: int, total_: int) -> None:
        bar.update_absolute(done, total_, preview(done) if preview is not None else None)

    return Progress(total=total, on_step=on_step, should_stop=internal("comfy.model_management.processing_interrupted"))


@contextlib.contextmanager
def comfy_interrupts() -> Iterator[None]:
    """Turn the core's :class:`Interrupted` into ComfyUI's own interrupt, so the run ends as "interrupted"."""
    try:
        yield
    except Interrupted:
        internal("comfy.model_management.throw_exception_if_processing_interrupted")()
        raise internal("comfy.model_management.InterruptProcessingException")() from None
