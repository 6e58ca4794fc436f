"""StableCascade's EfficientNetV2-S "effnet" encoder, as CascadeV uses it: torchvision's backbone plus our mapper.

The backbone is ``torchvision.models.efficientnet_v2_s(weights=None).features`` (``backbone.*``, nothing
downloaded), exactly as StableCascade's ``EfficientNetEncoder`` builds it, followed by the 16-channel ``mapper``;
so the released ``effnet_encoder.safetensors`` loads strictly. Only ``.features`` is kept (torchvision's pooling
and classifier are dropped at construction).

Inference semantics are torchvision's ``eval()``: BatchNorm with running statistics (eps 1e-3 in the backbone,
the default 1e-5 in the affine-free mapper norm), stochastic depth off (identity).

Public API:

* :class:`EfficientNetEncoder` - ``[N, 3, H, W]`` normalised RGB -> ``[N, 16, ceil(H/32), ceil(W/32)]``.
* :func:`preprocess_frames` / :func:`encode_video` - the official ``evae_encode`` (``[B, 3, T, H, W]`` in [-1, 1]
  -> ``[B, 16, T, H/32, W/32]``), streamed frame by frame.
* :func:`load_effnet_state_dict` / :func:`load_effnet_encoder` - strict loading of a released checkpoint.

The deterministic weights of the reference fixtures live in :mod:`cascadev_core.reference_recipes`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import efficientnet_v2_s

from .progress import Progress

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LATENT_CHANNELS = 16
DOWNSCALE = 32
BACKBONE_CHANNELS = 1280  # output channels of efficientnet_v2_s().features

# ---------------------------------------------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------------------------------------------


def efficientnet_v2_s_features() -> nn.Sequential:
    """``torchvision.models.efficientnet_v2_s(weights=None).features``: ``[N, 3, H, W]`` -> ``[N, 1280, H/32, W/32]``.

    Untrained (torchvision's init, no download); only the feature extractor is kept, the pooling and classifier
    torchvision builds with it are dropped here.
    """
    return efficientnet_v2_s(weights=None).features


class EfficientNetEncoder(nn.Module):
    """StableCascade ``EfficientNetEncoder``: ``backbone`` (torchvision EfficientNetV2-S features) then ``mapper``.

    ``forward(x [N, 3, H, W]) -> [N, 16, ceil(H/32), ceil(W/32)]``; ``x`` is ImageNet-normalised RGB
    (see :func:`preprocess_frames`). Built in eval mode.
    """

    def __init__(self, c_latent: int = LATENT_CHANNELS):
        super().__init__()
        self.backbone = efficientnet_v2_s_features()
        self.mapper = nn.Sequential(
            nn.Conv2d(BACKBONE_CHANNELS, c_latent, kernel_size=1, bias=False),
            nn.BatchNorm2d(c_latent, affine=False),
        )
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapper(self.backbone(x))


# ---------------------------------------------------------------------------------------------------------------
# Preprocessing and video encoding (official evae_encode)
# ---------------------------------------------------------------------------------------------------------------


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` in [-1, 1] -> ``Normalize(mean, std)(0.5 * (x + 1))`` in x's dtype."""
    x = 0.5 * (x + 1)
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return x.sub(mean).div(std)  # torchvision F.normalize: tensor.sub_(mean).div_(std)


def _check_video(video: torch.Tensor) -> None:
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video: expected [B, 3, T, H, W], got {tuple(video.shape)}")


def preprocess_frames(video: torch.Tensor) -> torch.Tensor:
    """``[B, 3, T, H, W]`` RGB in [-1, 1] -> ``[B*T, 3, H, W]`` ImageNet-normalised (frame-major per video).

    Exactly ``Normalize(mean, std)(0.5 * (x + 1))`` of the official ``evae_encode``, in the input dtype.
    """
    _check_video(video)
    b, c, t, h, w = video.shape
    return _normalize(video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))


@torch.no_grad()
def encode_video(
    encoder: nn.Module,
    video: torch.Tensor,
    frames_per_call: int = 1,
    dtype: torch.dtype | None = None,
    on_step=None,
    should_stop=None,
    size: tuple[int, int] | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """Official ``evae_encode``: ``video [B, 3, T, H, W]`` -> latents ``[B, 16, T, ceil(H'/32), ceil(W'/32)]``.

    Args:
        encoder: an :class:`EfficientNetEncoder` (eval mode) on the target device.
        video: RGB frames on any device, e.g. a view of a whole video on the CPU: only the frames of one call are
            moved to the encoder's device, rescaled, resized and preprocessed (a long video never exists there in
            full, nor as a second full-size copy anywhere).
        frames_per_call: frames per encoder call (taken in frame-major order over ``B*T``, as the official code).
            1 (default) is the official call pattern and reproduces the reference bit for bit; larger batches are
            faster but differ by ~1e-7 (other conv kernels).
        dtype: compute dtype (default: the encoder's parameter dtype; the official pipeline uses fp16).
        on_step, should_stop: :class:`~cascadev_core.progress.Progress` hooks, one unit per encoder call.
        size: ``(H', W')`` to resize each frame to first (bicubic, clamped to the value range), e.g. from
            :func:`cascadev_core.sizing.cascade_size`; None keeps ``(H, W)``.
        value_range: the range of ``video``'s values: ``(-1, 1)`` (the official input) or ``(0, 1)`` (an image).

    Returns latents in float32 (the encoder output cast up), on the encoder's device.
    """
    _check_video(video)
    if frames_per_call < 1:
        raise ValueError(f"frames_per_call: expected >= 1, got {frames_per_call}")
    lo, hi = value_range
    if (lo, hi) not in ((-1.0, 1.0), (0.0, 1.0)):
        raise ValueError(f"value_range: expected (-1, 1) or (0, 1), got {value_range}")
    p = next(encoder.parameters())
    dtype = dtype or p.dtype
    b, _, t = video.shape[:3]
    n = b * t
    prog = Progress(math.ceil(n / frames_per_call), on_step, should_stop)
    outs = []
    for s in range(0, n, frames_per_call):
        prog.check()
        frames = torch.stack([video[i // t, :, i % t] for i in range(s, min(n, s + frames_per_call))])
        frames = frames.to(p.device)
        if lo == 0.0:
            frames = frames.float() * 2 - 1
        if size is not None and tuple(frames.shape[-2:]) != tuple(size):
            frames = F.interpolate(frames.float(), size=tuple(size), mode="bicubic", align_corners=False).clamp(-1, 1)
        outs.append(encoder(_normalize(frames.to(dtype))).float())
        prog.advance()
    lat = torch.cat(outs, 0)
    _, c, h, w = lat.shape
    return lat.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint loading
# ---------------------------------------------------------------------------------------------------------------


def _strip_prefix(sd: Mapping[str, torch.Tensor], expected: Iterable[str]) -> dict[str, torch.Tensor]:
    """Drop a common wrapper prefix (``effnet.``, ``module.``...) when that makes the keys match."""
    expected = set(expected)
    if set(sd) & expected:
        return dict(sd)
    for prefix in ("effnet.", "module.", "encoder.", "model."):
        stripped = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if stripped and set(stripped) & expected:
            return stripped
    return dict(sd)


def load_effnet_state_dict(
    model: EfficientNetEncoder, sd: Mapping[str, torch.Tensor], name: str = "state dict"
) -> EfficientNetEncoder:
    """Strictly load ``sd`` (keys ``backbone.*``, ``mapper.*``; a wrapper prefix is stripped) into ``model``.

    Raises :class:`~cascadev_core.checkpoint.CheckpointMismatchError` (a ``ValueError``) listing missing,
    unexpected and wrong-shape keys.
    """
    from .checkpoint import check_state_dict

    sd = _strip_prefix(sd, model.state_dict().keys())
    check_state_dict(model.state_dict(), sd, name, "the effnet encoder (EfficientNetEncoder)")
    model.load_state_dict(sd, strict=True)
    return model


def load_effnet_encoder(
    path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> EfficientNetEncoder:
    """Build an :class:`EfficientNetEncoder` from ``effnet_encoder.safetensors`` (or a ``.pth`` state dict,
    optionally wrapped in ``{"state_dict": ...}``), read by :func:`cascadev_core.checkpoint.load_state_dict_file`.

    Loading is strict: a wrong file raises ``ValueError`` naming the missing/unexpected keys and bad shapes.
    The official pipeline runs the encoder in fp16 (``dtype=torch.float16``); fp32 differs by ~4e-4.
    """
    from .checkpoint import load_state_dict_file

    model = load_effnet_state_dict(EfficientNetEncoder(), load_state_dict_file(path)[0], name=str(path))
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
