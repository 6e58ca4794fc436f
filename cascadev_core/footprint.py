"""Whole-run memory of each cascade stage, estimated from sizes before any work, and the check that refuses a size
that cannot fit with a message in bytes instead of an allocator error after minutes of work.

These count the state a stage keeps for the whole video (per-call activations of the DiT are
:mod:`cascadev_core.memory`'s job). The estimates are deliberately generous: they only refuse sizes that exceed
the device's (or the machine's) TOTAL memory, which no offloading can fix.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
#: float32 values per SD-latent pixel the refine keeps for the whole video: the latents, the ancestral noise,
#: eps and its window accumulator, the denoised estimate, the sampler's history (DPM++) and the upsampled
#: 16-channel conditioning
REFINE_VALUES_PER_LATENT_PIXEL = 4 * 6 + 16
#: peak float values per input pixel of one EfficientNetV2-S call (stem and first fused stages at 1/2 and 1/4
#: resolution, with their residual inputs alive), plus the resized RGB frame
EFFNET_VALUES_PER_PIXEL = 27


class DoesNotFit(ValueError):
    """A size whose estimated memory exceeds what the device (or the machine) has in total."""


@dataclass(frozen=True)
class Estimate:
    """``bytes`` of ``what``, held on ``device`` (e.g. "cuda:0", "cpu")."""

    what: str
    bytes: int
    device: str


def refine_state(videos: int, frames: int, height: int, width: int, latent_channels: int = 4) -> Estimate:
    """Whole-video refine state for ``videos x frames`` frames of ``height x width`` PIXELS (float32)."""
    pixels = videos * frames * (height // 8) * (width // 8)
    return Estimate("the refine's latents", pixels * REFINE_VALUES_PER_LATENT_PIXEL * 4, "model")


def effnet_call(frames_per_call: int, height: int, width: int, dtype_bytes: int = 4) -> Estimate:
    """Peak activations of one effnet call on ``frames_per_call`` frames of ``height x width`` pixels."""
    return Estimate(
        "one effnet call", frames_per_call * height * width * EFFNET_VALUES_PER_PIXEL * dtype_bytes, "model"
    )


def frames_output(frames: int, height: int, width: int, channels: int = 3, dtype_bytes: int = 4) -> Estimate:
    """A decoded video ``[frames, height, width, channels]`` kept in host memory (ComfyUI's IMAGE is float32)."""
    return Estimate("the decoded frames", frames * height * width * channels * dtype_bytes, "host")


def check_fits(estimates: list[Estimate], totals: dict[str, int | str], where: str, size: str, fix: str) -> None:
    """Raise :class:`DoesNotFit` when the estimates for one kind of memory exceed its total.

    Args:
        estimates: what the stage will hold; estimates for the same memory add up.
        totals: total bytes per device kind (``"model"`` = the device the model runs on, ``"host"`` = RAM); a
            kind may name another instead of a number (``{"model": "host"}`` when the model runs in RAM).
        where: the node and input at fault, e.g. ``"CascadeV Encode Frames: images"``.
        size: the size in words, e.g. ``"121 frames of 8192x8192 pixels"``.
        fix: the setting that fixes it.
    """
    needed: dict[str, list[Estimate]] = {}
    for e in estimates:
        device = totals.get(e.device) if isinstance(totals.get(e.device), str) else e.device
        needed.setdefault(device, []).append(e)
    for device, items in sorted(needed.items()):
        total = totals.get(device)
        bytes_needed = sum(e.bytes for e in items)
        if isinstance(total, int) and bytes_needed > total:
            parts = ", ".join(f"{e.what} {e.bytes / GIB:.1f} GiB" for e in items)
            name = "the model's device" if device == "model" else "this machine's RAM"
            raise DoesNotFit(
                f"{where}: {size} needs about {bytes_needed / GIB:.1f} GiB ({parts}) but {name} has "
                f"{total / GIB:.1f} GiB in total; {fix}"
            )
